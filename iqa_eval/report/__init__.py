"""Reports: the JSON contract, the HTML page, and run metadata."""
