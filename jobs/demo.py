"""The demo: synthetic people -> SSPCM through the Ray driver -> COCO AP next to a supervised baseline.

    python -m jobs.demo [--config configs/demo.yaml] [--train-images 600] [--val-images 100]
                        [--difficulty 0.5] [--burn-in-steps 1000] [--burn-in-lr 2e-3] [--runtime ray|local]
                        [--section.field=value ...]

Generates the synthetic data set under ``data/synthetic/`` (difficulty 0.5, as the benchmark) unless
a set made the same way is there, then:
  1. evaluates an untrained student (the floor),
  2. burn-in: trains three small networks in-process on the labeled persons only (supervised,
     ``--burn-in-steps`` each; the offline stand-in for the paper's ImageNet start) and prints
     the AP of the first: this is the plain supervised result after a few CPU minutes,
  3. goes on with the supervised baseline (the student alone, from burn-in ``a``) for the
     config's steps,
  4. trains SSPCM for the same steps (C from burn-in ``a``, A from ``c``, B from ``b``: three
     independently started networks, as in the paper; one Ray actor
     per network plus the pseudo-label actor, on a local Ray instance it starts itself),
and prints the APs and wall times; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

from jobs.cli import setup_logging, split_overrides
from pipeline.config import Config, load_config
from pipeline.schedule import LocalExecutor
from pipeline.synthetic import generate_dataset
from pipeline.trainer import Trainer, build_local, load_run_data, train_local

log = logging.getLogger("jobs.demo")


def ensure_synthetic(
    root: Path, train_images: int, val_images: int, seed: int, difficulty: float = 0.5
) -> None:
    """Generate ``root/train`` and ``root/val`` (disjoint image ids) unless already present.

    ``root/<set>/generated.json`` records how a set was made; a set made with other settings
    (or by an older demo, without that file) is generated again.
    """
    for name, n, start, s in (("train", train_images, 1, seed), ("val", val_images, 1_000_000, seed + 1)):
        recipe = {"seed": s, "images": n, "start_id": start, "difficulty": difficulty}
        marker = root / name / "generated.json"
        if (root / name / "annotations.json").is_file() and marker.is_file():
            if json.loads(marker.read_text()) == recipe:
                continue
        log.info(
            "generating synthetic %s set: %d images, difficulty %g -> %s", name, n, difficulty, root / name
        )
        generate_dataset(root / name, seed=s, num_images=n, start_id=start, difficulty=difficulty, workers=2)
        marker.write_text(json.dumps(recipe))


def _variant(cfg: Config, method: str, suffix: str) -> Config:
    return dataclasses.replace(
        cfg,
        method=dataclasses.replace(cfg.method, name=method),
        train=dataclasses.replace(cfg.train, out_dir=cfg.train.out_dir + suffix),
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument(
        "--difficulty", type=float, default=0.5, help="synthetic difficulty in [0, 1] (as the benchmark)"
    )
    parser.add_argument(
        "--burn-in-steps",
        type=int,
        default=1000,
        help="supervised steps of the two starting networks (0 = SSPCM and the baseline from scratch)",
    )
    parser.add_argument("--burn-in-lr", type=float, default=2e-3, help="constant LR of the burn-in")
    parser.add_argument("--runtime", choices=["ray", "local"], help="override resources.runtime for SSPCM")
    parser.add_argument("--log-level", default="INFO")
    args, overrides = split_overrides(parser, argv)
    setup_logging(args.log_level)
    cfg = load_config(args.config, overrides)
    if args.runtime:
        cfg = dataclasses.replace(cfg, resources=dataclasses.replace(cfg.resources, runtime=args.runtime))
    ensure_synthetic(
        Path(cfg.data.labeled_ann).parent.parent,
        args.train_images,
        args.val_images,
        args.data_seed,
        args.difficulty,
    )
    summary: dict = {}

    # 1. the floor: an untrained student
    untrained = _variant(cfg, "supervised", "_untrained")
    data = load_run_data(untrained)
    nets, pseudo = build_local(untrained, data)
    summary["untrained_AP"] = Trainer(untrained, data, nets, pseudo, LocalExecutor()).evaluate()[
        "eval/student/AP"
    ]

    # SSPCM's epoch is a pass over the pool; the supervised runs take the same steps per epoch
    sspcm_data = load_run_data(cfg)
    o = cfg.optim
    steps = o.steps_per_epoch or max(
        len(sspcm_data.labeled) // o.batch_size, len(sspcm_data.unlabeled) // o.unlabeled_batch_size, 1
    )

    # 2. burn-in: three supervised networks on the labeled persons (constant LR): a (the start of
    # both reported students), b and c (SSPCM's teachers B and A)
    burn_in = {}
    t0 = time.perf_counter()
    if args.burn_in_steps > 0:
        epochs = max(1, min(10, args.burn_in_steps))
        for name in ("a", "b", "c"):
            b = _variant(cfg, "supervised", f"_burn_in_{name}")
            b = dataclasses.replace(
                b,
                optim=dataclasses.replace(
                    o,
                    epochs=epochs,
                    steps_per_epoch=max(1, args.burn_in_steps // epochs),
                    lr=args.burn_in_lr,
                    lr_steps=(),
                ),
                train=dataclasses.replace(b.train, seed=cfg.train.seed * 100 + len(burn_in) + 1),
            )
            log.info("burn-in %s: %d supervised steps, in-process", name, args.burn_in_steps)
            res = train_local(b)
            burn_in[name] = str(Path(b.train.out_dir).resolve())  # Ray actors load it too
            summary[f"burn_in_{name}_AP"] = res["eval/student/AP"]
        summary["supervised_burn_in_steps"] = args.burn_in_steps
        summary["burn_in_wall_s"] = round(time.perf_counter() - t0, 1)
        log.info(
            "supervised after %d steps (%.0f s for three networks): AP %.3f (untrained %.3f)",
            args.burn_in_steps,
            summary["burn_in_wall_s"],
            summary["burn_in_a_AP"],
            summary["untrained_AP"],
        )
        cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(
                cfg.model, teacher_a_init=burn_in["c"], teacher_b_init=burn_in["b"], student_init=burn_in["a"]
            ),
        )

    # 3. the supervised baseline: the student alone, same start, same steps as SSPCM
    supervised = _variant(cfg, "supervised", "_supervised")
    supervised = dataclasses.replace(supervised, optim=dataclasses.replace(o, steps_per_epoch=steps))
    log.info("supervised baseline: %d epochs x %d steps, in-process", o.epochs, steps)
    t0 = time.perf_counter()
    sup = train_local(supervised)
    summary["supervised_AP"] = sup["eval/student/AP"]
    summary["supervised_wall_s"] = round(time.perf_counter() - t0, 1)

    # 4. SSPCM, through the Ray driver (or in-process with --runtime local)
    log.info("SSPCM: %d epochs x %d steps, runtime %s", o.epochs, steps, cfg.resources.runtime)
    t0 = time.perf_counter()
    if cfg.resources.runtime == "ray":
        from actors.runtime import train_ray

        res = train_ray(cfg)
    else:
        res = train_local(cfg)
    summary["sspcm_student_AP"] = res["eval/student/AP"]
    summary["sspcm_student_AP50"] = res["eval/student/AP50"]
    summary["sspcm_ensemble_AP"] = res.get("eval/ensemble_ab/AP")
    summary["sspcm_wall_s"] = round(time.perf_counter() - t0, 1)
    summary["run_dir"] = cfg.train.out_dir
    log.info(
        "COCO AP on the synthetic val set: untrained %.3f | supervised burn-in %.3f | then supervised "
        "%.3f (%.0f s) | SSPCM student %.3f, A+B %.3f (%.0f s, %s); run: %s",
        summary["untrained_AP"],
        summary.get("burn_in_a_AP", 0.0),
        summary["supervised_AP"],
        summary["supervised_wall_s"],
        summary["sspcm_student_AP"],
        summary["sspcm_ensemble_AP"] or 0.0,
        summary["sspcm_wall_s"],
        cfg.resources.runtime,
        cfg.train.out_dir,
    )
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
