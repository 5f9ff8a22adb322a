"""Entrypoints run with ``python -m jobs.X`` locally or by ``ray job submit``."""
