#!/usr/bin/env bash
# The final job of a sharded run: one report, one history line and one job summary for the whole
# run, from the shards' reports (downloaded into reports/shard-*/).
set -euo pipefail
shopt -s nullglob
shards=(reports/shard-*/iqa-report.json)
if [ "${#shards[@]}" -eq 0 ]; then
  echo "merge.sh: no reports/shard-*/iqa-report.json to merge" >&2
  exit 2
fi
exec iqa-eval merge "${shards[@]}" -o reports/merged/iqa-report.json
