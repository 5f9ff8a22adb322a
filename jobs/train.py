"""Train a pose network with the supervised, Dual Network or SSPCM method.

    python -m jobs.train --config configs/demo.yaml [--resume] [--dry-run] \
        [--section.field=value ...]

``--resources.runtime=ray`` runs the same schedule with one Ray actor per network (attaching to
``resources.address`` / the cluster of a ``ray job submit``, or starting a local instance);
``--resources.data_parallel=N`` makes each network N data-parallel ranks (DDP). Supervised runs
on Ray go through Ray Train.

Writes RUN_DIR (train.out_dir): config.yaml, metrics.jsonl, tensorboard/, checkpoints/epoch_*/,
results_*.json and eval.json; prints the final evaluation as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

from pipeline.cli import setup_logging, split_overrides
from pipeline.config import ConfigError, load_config
from pipeline.trainer import train_local

log = logging.getLogger("jobs.train")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML config file (defaults are used for anything it omits)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in out_dir"
    )
    parser.add_argument("--dry-run", action="store_true", help="one epoch of two steps, for smoke tests")
    parser.add_argument("--log-level", default="INFO")
    args, overrides = split_overrides(parser, argv)
    setup_logging(args.log_level)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        parser.exit(2, f"error: {e}\n")
    if args.dry_run:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=1, steps_per_epoch=2))
    if cfg.resources.runtime == "ray":
        from actors.driver import train_ray

        results = train_ray(cfg, resume=args.resume)
    else:
        results = train_local(cfg, resume=args.resume)
    print(json.dumps(results), flush=True)
    return results


if __name__ == "__main__":
    main()
