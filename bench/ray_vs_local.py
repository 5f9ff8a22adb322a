"""Steps/s of the SSPCM schedule in-process vs over Ray actors, same config, same cores.

    python -m bench.ray_vs_local [--steps 60] [--method sspcm] [--data-parallel N] [--json]

Generates a small synthetic set (cached under data/bench/ray_vs_local), runs the same number of
optimizer steps with the in-process executor and with one Ray actor per network (local Ray
instance with as many CPUs as this machine), and prints both rates and their ratio; with
``--data-parallel N`` also with N data-parallel lanes (N ranks per network, the same global
batch). Only the training steps are timed (start-up, actor launch and evaluation are excluded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from pipeline.cli import setup_logging
from pipeline.config import load_config
from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.method.schedule import LocalExecutor
from pipeline.run_setup import build_local, load_run_data
from pipeline.trainer import Trainer

log = logging.getLogger("bench.ray_vs_local")
REPO = Path(__file__).resolve().parents[1]


class TimedTrainer(Trainer):
    """Records the wall time of the training epochs only."""

    train_seconds = 0.0

    def _train_epoch(self, *a, **kw):
        t0 = time.perf_counter()
        super()._train_epoch(*a, **kw)
        self.train_seconds += time.perf_counter() - t0


def time_lanes(cfg_path: Path, overrides: list[str], lanes_n: int, data) -> float:
    """Seconds of the training epochs with ``lanes_n`` data-parallel lanes."""
    from actors.driver import Lanes
    from actors.role_group import GroupExecutor, lane_batches

    cfg = load_config(
        cfg_path,
        [
            *overrides,
            "train.out_dir=runs/bench_ray_vs_local/data_parallel",
            "resources.runtime=ray",
            f"resources.data_parallel={lanes_n}",
            "train.num_threads=1",
        ],
    )
    lanes = Lanes(cfg, data)
    try:
        ex = GroupExecutor(lanes.actors, lanes.relaunch)
        trainer = TimedTrainer(cfg, data, lanes.groups, lanes.pseudo, ex, lane_batches(lanes.pseudo, {}))
        trainer.train()
    finally:
        lanes.close()
    return trainer.train_seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--method", default="sspcm", choices=["supervised", "dual", "sspcm"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-parallel", type=int, default=0, help="also time N lanes (N > 1)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    root = REPO / "data" / "bench" / "ray_vs_local"
    for name, n, start in (("train", 120, 1), ("val", 20, 1_000_000)):
        if not (root / name / "annotations.json").is_file():
            generate_dataset(root / name, seed=5, num_images=n, start_id=start, workers=2)
    cores = os.cpu_count() or 1
    overrides = [
        f"data.labeled_ann={root / 'train/annotations.json'}",
        f"data.labeled_images={root / 'train/images'}",
        f"data.unlabeled_ann={root / 'train/annotations.json'}",
        f"data.unlabeled_images={root / 'train/images'}",
        "data.pool_includes_labeled=false",
        f"data.val_ann={root / 'val/annotations.json'}",
        f"data.val_images={root / 'val/images'}",
        f"method.name={args.method}",
        "optim.epochs=1",
        f"optim.steps_per_epoch={args.steps}",
        f"optim.batch_size={args.batch_size}",
        f"optim.unlabeled_batch_size={args.batch_size}",
        f"train.num_threads={cores}",
        "train.checkpoint_every_epochs=0",
    ]
    cfg_path = REPO / "configs" / "synthetic_benchmark.yaml"
    rates = {}
    # in-process: one process, `cores` torch threads
    cfg = load_config(cfg_path, [*overrides, "train.out_dir=runs/bench_ray_vs_local/local"])
    data = load_run_data(cfg)
    nets, pseudo = build_local(cfg, data)
    tr = TimedTrainer(cfg, data, nets, pseudo, LocalExecutor())
    tr.train()
    rates["in_process"] = args.steps / tr.train_seconds
    # Ray: one actor per network on a local instance with the same cores
    import ray

    from actors.driver import build_ray_trainer

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    cfg = load_config(
        cfg_path, [*overrides, "train.out_dir=runs/bench_ray_vs_local/ray", "resources.runtime=ray"]
    )
    trainer, pg = build_ray_trainer(cfg)
    trainer.__class__ = TimedTrainer
    trainer.train()
    rates["ray"] = args.steps / trainer.train_seconds
    for h in [*trainer.nets.values(), trainer.pseudo]:
        ray.kill(h)
    ray.util.remove_placement_group(pg)
    if args.data_parallel > 1:
        rates["ray_data_parallel"] = time_lanes(cfg_path, overrides, args.data_parallel, data) / args.steps
    ray.shutdown()
    torch.set_num_threads(cores)
    result = {
        "method": args.method,
        "steps": args.steps,
        "cores": cores,
        "in_process_steps_per_s": round(rates["in_process"], 3),
        "ray_steps_per_s": round(rates["ray"], 3),
        "ray_over_in_process": round(rates["ray"] / rates["in_process"], 3),
    }
    if "ray_data_parallel" in rates:
        result["data_parallel"] = args.data_parallel
        result["ray_data_parallel_steps_per_s"] = round(1.0 / rates["ray_data_parallel"], 3)
    print(
        f"{args.method}, {args.steps} steps, {cores} cores: "
        f"in-process {result['in_process_steps_per_s']:.2f} steps/s, "
        f"Ray {result['ray_steps_per_s']:.2f} steps/s, ratio {result['ray_over_in_process']:.2f}"
    )
    if "data_parallel" in result:
        print(
            f"Ray with {args.data_parallel} data-parallel lanes (same global batch): "
            f"{result['ray_data_parallel_steps_per_s']:.2f} steps/s"
        )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
