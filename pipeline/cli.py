"""Shared command-line helpers for the jobs: logging set-up and config overrides."""

from __future__ import annotations

import argparse
import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def split_overrides(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """Parse known args; the rest must be ``--section.field=value`` config overrides."""
    args, rest = parser.parse_known_args(argv)
    overrides = []
    for item in rest:
        text = item[2:] if item.startswith("--") else item
        if "=" not in text or "." not in text.split("=", 1)[0]:
            parser.error(f"unrecognised argument {item!r} (config overrides look like --section.field=value)")
        overrides.append(text)
    return args, overrides
