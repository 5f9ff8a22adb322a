"""The demo: synthetic people -> SSPCM through the Ray driver -> COCO AP next to a supervised
baseline, with the margin's 95 % interval and a picture.

    python -m jobs.demo [--config configs/demo.yaml] [--train-images 3200] [--val-images 300]
                        [--difficulty 0] [--max-people 1] [--burn-in-steps 500] [--burn-in-lr 2e-3]
                        [--runtime ray|local] [--bootstrap-draws 200] [--section.field=value ...]

Generates the synthetic data set under ``data/synthetic/`` (one upright person per image, the
benchmark's regime) unless a set made the same way is there, then:
  1. evaluates an untrained student (the floor),
  2. burn-in: trains three small networks on the labeled persons only (``--burn-in-steps``
     supervised steps each, three processes side by side; the offline stand-in for the paper's
     ImageNet start): ``a`` starts both reported students, ``b`` and ``c`` SSPCM's teachers B
     and A, so that the three networks start apart as in the paper,
  3. trains the supervised baseline (the student alone, from ``a``) for the config's steps, in a
     child process with one torch thread, side by side with
  4. SSPCM for the same steps (one Ray actor per network plus the pseudo-label actor, on a
     local Ray instance it starts itself, or in-process with ``--runtime local``),
  5. compares the two students on the validation images with a paired bootstrap (95 % interval),
  6. writes ``<run>/demo.png``: AP against step for both students (and SSPCM's teacher
     ensemble), with PCM's labels drawn on a few pool persons.
The last line on stdout is one JSON object: ``{"supervised": {"AP": ...}, "sspcm": {"AP": ...},
"margin": {"diff": ..., "ci95": [lo, hi], ...}, ...}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.cli import setup_logging, split_overrides
from pipeline.config import Config, load_config
from pipeline.data.synthetic.dataset import ensure_synthetic
from pipeline.evaluation.paired_bootstrap import paired_bootstrap
from pipeline.method.schedule import LocalExecutor
from pipeline.reporting.demo_figure import ap_curve, label_overlays, write_demo_figure
from pipeline.run_setup import build_local, burn_in_configs, load_run_data, variant_config
from pipeline.trainer import Trainer, train_local

log = logging.getLogger("jobs.demo")


def _train_in_child(cfg: Config, log_level: str) -> dict[str, float]:
    """One supervised run (a burn-in network or the baseline) in a spawned child process, with
    ``cfg.train.num_threads`` torch threads: its final evaluation and wall seconds."""
    setup_logging(log_level)
    t0 = time.perf_counter()
    results = train_local(cfg)
    return {**results, "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--train-images", type=int, default=3200, help="the labeled set and the pool")
    parser.add_argument("--val-images", type=int, default=300)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=0.0, help="synthetic difficulty in [0, 1]")
    parser.add_argument("--max-people", type=int, default=1, help="persons per synthetic image: 1..N")
    parser.add_argument(
        "--burn-in-steps",
        type=int,
        default=500,
        help="supervised steps of the three starting networks (0 = SSPCM and the baseline from scratch)",
    )
    parser.add_argument("--burn-in-lr", type=float, default=2e-3, help="constant LR of the burn-in")
    parser.add_argument("--runtime", choices=["ray", "local"], help="override resources.runtime for SSPCM")
    parser.add_argument(
        "--bootstrap-draws", type=int, default=200, help="paired bootstrap of the margin over the val images"
    )
    parser.add_argument("--log-level", default="INFO")
    args, overrides = split_overrides(parser, argv)
    if args.bootstrap_draws < 1:
        parser.error("--bootstrap-draws must be >= 1")
    setup_logging(args.log_level)
    t_start = time.perf_counter()
    cfg = load_config(args.config, overrides)
    if args.runtime:
        cfg = dataclasses.replace(cfg, resources=dataclasses.replace(cfg.resources, runtime=args.runtime))
    ensure_synthetic(
        Path(cfg.data.labeled_ann).parent.parent,
        args.train_images,
        args.val_images,
        args.data_seed,
        args.difficulty,
        args.max_people,
    )
    summary: dict = {}

    # 1. the floor: an untrained student
    untrained = variant_config(cfg, "supervised", "_untrained")
    data = load_run_data(untrained)
    nets, pseudo = build_local(untrained, data)
    summary["untrained_AP"] = Trainer(untrained, data, nets, pseudo, LocalExecutor()).evaluate()[
        "eval/student/AP"
    ]

    # SSPCM's epoch is a pass over the pool; the supervised baseline takes the same steps per epoch
    sspcm_data = load_run_data(cfg)
    o = cfg.optim
    steps = o.steps_per_epoch or max(
        len(sspcm_data.labeled) // o.batch_size, len(sspcm_data.unlabeled) // o.unlabeled_batch_size, 1
    )
    summary["steps"] = steps * o.epochs
    summary["labeled_persons"], summary["pool_persons"] = len(sspcm_data.labeled), len(sspcm_data.unlabeled)

    # 2. burn-in: three supervised networks on the labeled persons, side by side (constant LR)
    if args.burn_in_steps > 0:
        t0 = time.perf_counter()
        runs = burn_in_configs(cfg, args.burn_in_steps, args.burn_in_lr)
        log.info(
            "burn-in: networks %s, %d supervised steps each, three processes side by side",
            ", ".join(runs), args.burn_in_steps,
        )  # fmt: skip
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(runs), mp_context=ctx) as pool:
            results = dict(zip(runs, pool.map(_train_in_child, runs.values(), [args.log_level] * len(runs))))
        burn_in = {name: str(Path(r.train.out_dir).resolve()) for name, r in runs.items()}  # actors load them
        summary["burn_in"] = {f"AP_{name}": res["eval/student/AP"] for name, res in results.items()}
        summary["burn_in"]["steps"] = args.burn_in_steps
        summary["burn_in"]["wall_s"] = round(time.perf_counter() - t0, 1)
        log.info(
            "burn-in done in %.0f s: AP %s (untrained %.3f)",
            summary["burn_in"]["wall_s"],
            ", ".join(f"{n} {r['eval/student/AP']:.3f}" for n, r in results.items()),
            summary["untrained_AP"],
        )
        cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(
                cfg.model, teacher_a_init=burn_in["c"], teacher_b_init=burn_in["b"], student_init=burn_in["a"]
            ),
        )

    # 3. the supervised baseline (the student alone, same start, same steps as SSPCM) in a child
    # process with one thread, side by side with 4. SSPCM, whose actors wait on one another
    # often enough to leave that thread a core
    supervised = variant_config(cfg, "supervised", "_supervised")
    supervised = dataclasses.replace(
        supervised,
        optim=dataclasses.replace(o, steps_per_epoch=steps),
        train=dataclasses.replace(supervised.train, num_threads=1),
    )
    log.info(
        "supervised baseline (%d epochs x %d steps, one thread, a child process) side by side with "
        "SSPCM (runtime %s)", o.epochs, steps, cfg.resources.runtime,
    )  # fmt: skip
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        baseline = pool.submit(_train_in_child, supervised, args.log_level)
        t0 = time.perf_counter()
        if cfg.resources.runtime == "ray":
            from actors.driver import train_ray

            res = train_ray(cfg)
        else:
            res = train_local(cfg)
        summary["sspcm"] = {
            "AP": res["eval/student/AP"],
            "AP50": res["eval/student/AP50"],
            "ensemble_AP": res.get("eval/ensemble_ab/AP"),
            "wall_s": round(time.perf_counter() - t0, 1),
            "run_dir": cfg.train.out_dir,
        }
        sup = baseline.result()
    summary["supervised"] = {
        "AP": sup["eval/student/AP"],
        "AP50": sup["eval/student/AP50"],
        "wall_s": sup["wall_s"],
        "run_dir": supervised.train.out_dir,
    }

    # 5. is SSPCM's student really above the baseline? paired bootstrap over the val images
    t0 = time.perf_counter()
    m = paired_bootstrap(
        Path(cfg.data.val_ann),
        Path(cfg.train.out_dir) / "results_student.json",
        Path(supervised.train.out_dir) / "results_student.json",
        draws=args.bootstrap_draws,
        seed=cfg.train.seed,
    )
    summary["margin"] = {
        "diff": m["diff"],
        "ci95": m["ci95"],
        "relative": m["diff"] / m["AP_b"] if m["AP_b"] > 0 else None,
        "p_sspcm_above": m["p_a_above_b"],
        "draws": m["draws"],
    }
    log.info("paired bootstrap: %d draws in %.0f s", m["draws"], time.perf_counter() - t0)

    # 6. the picture: AP against step, and PCM's labels on a few pool persons
    start = [(0, summary["burn_in"]["AP_a"])] if "burn_in" in summary else []
    curves = {
        "supervised (student)": start + ap_curve(supervised.train.out_dir),
        "SSPCM student C": start + ap_curve(cfg.train.out_dir),
        "SSPCM teachers A+B": ap_curve(cfg.train.out_dir, "ensemble_ab"),
    }
    overlays = label_overlays(Path(cfg.train.out_dir) / "pseudo_labels", cfg.data.labeled_images, n=4)
    margin = summary["margin"]
    summary["figure"] = str(
        write_demo_figure(
            Path(cfg.train.out_dir) / "demo.png",
            curves,
            overlays,
            title=(
                f"{summary['labeled_persons']} labeled persons, pool {summary['pool_persons']}: SSPCM - "
                f"supervised {margin['diff']:+.3f} AP [{margin['ci95'][0]:+.3f}, {margin['ci95'][1]:+.3f}]"
            ),
            lr_drop_steps=tuple(e * steps for e in o.lr_steps),
        )
    )
    summary["wall_s"] = round(time.perf_counter() - t_start, 1)
    log.info(
        "COCO AP on the synthetic val set: untrained %.3f | burn-in a %.3f | supervised %.3f (%.0f s) | "
        "SSPCM student %.3f, A+B %.3f (%.0f s, %s) | SSPCM - supervised %+.3f, 95 %% interval "
        "[%+.3f, %+.3f] | %.0f s in all; figure %s",
        summary["untrained_AP"],
        summary.get("burn_in", {}).get("AP_a", 0.0),
        summary["supervised"]["AP"],
        summary["supervised"]["wall_s"],
        summary["sspcm"]["AP"],
        summary["sspcm"]["ensemble_AP"] or 0.0,
        summary["sspcm"]["wall_s"],
        cfg.resources.runtime,
        margin["diff"],
        *margin["ci95"],
        summary["wall_s"],
        summary["figure"],
    )
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
