"""Reports: the JSON contract and its schema, the HTML page, run history, trends, merges, comparisons."""
