"""Suite-level wiring only: the iqa-eval plugin (installed via its pytest11 entry point) does the work."""
