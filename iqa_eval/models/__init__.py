"""Model clients: the classical expert panel, API models, local models and replays."""
