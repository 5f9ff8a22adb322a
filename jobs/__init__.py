"""Entry points run with ``python -m jobs.X`` locally or by ``ray job submit``: each parses its
arguments, calls ``pipeline/`` (or ``actors/``) and prints. Nothing imports this package."""
