"""Stage 1 of the suite; a package so that it also ships inside iqa_eval as iqa_eval.suite."""
