"""Benchmarks that print figures (``python -m bench.X``); nothing in ``pipeline/``, ``actors/`` or
``jobs/`` imports this package."""
