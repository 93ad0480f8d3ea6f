#!/usr/bin/env bash
# One shard of the iqa-eval suite against the model under test, as each job of the CI matrix runs
# it; extra arguments go to pytest (e.g. -m "fr or nr").
#
#   IQA_MODEL     the model spec, e.g. openai:mymodel@<deployed commit> (pin the revision: see the
#                 README's "Use in CI")
#   IQA_BASE_URL  its OpenAI-compatible endpoint (OPENAI_API_KEY comes from the CI's secrets)
#   SHARD         K/N, this job's share of the cells
#   IQA_GATES     optional: the committed gate profile (iqa-eval gates init writes one)
#   IQA_BASELINE  optional: the committed baseline report (iqa-eval baseline bless writes one)
#
# Exit status: 0 every gate held; 1 a gate missed or a cell regressed; 75 cells could not be
# measured (endpoint down, bad key, cap reached): retry, it says nothing about the model.
set -euo pipefail
: "${IQA_MODEL:?set IQA_MODEL to the model spec}" "${SHARD:?set SHARD to K/N}"
args=(--iqa-model "$IQA_MODEL" --iqa-shard "$SHARD" "--iqa-report-dir=reports/shard-${SHARD%%/*}")
args+=("--iqa-cache=.iqa_cache")
if [ -n "${IQA_BASE_URL:-}" ]; then args+=(--iqa-base-url "$IQA_BASE_URL"); fi
if [ -n "${IQA_GATES:-}" ]; then args+=("--iqa-gates=$IQA_GATES"); fi
if [ -n "${IQA_BASELINE:-}" ]; then args+=("--iqa-baseline=$IQA_BASELINE"); fi
status=0
iqa-eval run "${args[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests ran": the selection left this shard no cell, which is not a failure.
  echo "run-shard.sh: shard $SHARD holds none of the selected cells"
  exit 0
fi
exit "$status"
