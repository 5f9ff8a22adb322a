"""The demo: synthetic people -> train a small network on CPU -> COCO AP vs an untrained one.

    python -m jobs.demo [--config configs/demo.yaml] [--train-images 600] [--val-images 100]

Generates the synthetic data set under ``data/synthetic/`` if it is not there, evaluates the
untrained network, trains, and prints both APs and the wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

from jobs.cli import setup_logging, split_overrides
from pipeline.config import load_config
from pipeline.schedule import LocalExecutor
from pipeline.synthetic import generate_dataset
from pipeline.trainer import Trainer, build_local, load_run_data

log = logging.getLogger("jobs.demo")


def ensure_synthetic(root: Path, train_images: int, val_images: int, seed: int) -> None:
    """Generate ``root/train`` and ``root/val`` (disjoint image ids) unless already present."""
    for name, n, start, s in (("train", train_images, 1, seed), ("val", val_images, 1_000_000, seed + 1)):
        if (root / name / "annotations.json").is_file():
            continue
        log.info("generating synthetic %s set: %d images -> %s", name, n, root / name)
        generate_dataset(root / name, seed=s, num_images=n, start_id=start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--log-level", default="INFO")
    args, overrides = split_overrides(parser, argv)
    setup_logging(args.log_level)
    t0 = time.perf_counter()
    cfg = load_config(args.config, overrides)
    ensure_synthetic(
        Path(cfg.data.labeled_ann).parent.parent, args.train_images, args.val_images, args.data_seed
    )
    data = load_run_data(cfg)
    untrained_cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, out_dir=cfg.train.out_dir + "_untrained")
    )
    nets, pseudo = build_local(untrained_cfg, data)
    before = Trainer(untrained_cfg, data, nets, pseudo, LocalExecutor()).evaluate()
    nets, pseudo = build_local(cfg, data)
    after = Trainer(cfg, data, nets, pseudo, LocalExecutor()).train()
    wall = time.perf_counter() - t0
    summary = {
        "untrained_AP": before["eval/student/AP"],
        "trained_AP": after["eval/student/AP"],
        "trained_AP50": after["eval/student/AP50"],
        "wall_time_s": round(wall, 1),
        "run_dir": cfg.train.out_dir,
    }
    log.info(
        "untrained AP %.3f -> trained AP %.3f (AP50 %.3f) in %.0f s; run: %s",
        summary["untrained_AP"],
        summary["trained_AP"],
        summary["trained_AP50"],
        wall,
        cfg.train.out_dir,
    )
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
