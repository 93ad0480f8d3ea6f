"""Cells, gates and runs: a cell evaluated from its answers (cells), one run's datasets,
clients, engine and results (suite), its settings (config), the gates and the baseline
comparison that judge it, and the metamorphic relations."""
