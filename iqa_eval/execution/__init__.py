"""How queries travel: the engine (dedupe, cache, concurrency, retries, caps, progress), the
response cache, and the usage a run reports."""
