"""Does unlabeled data help? Supervised vs Dual Network vs SSPCM on the synthetic benchmark.

    python -m bench.semi_supervised --seed N [--json] [--epochs 10] [--labeled 200] [--jobs 2]
                                    [--burn-in-steps 500] [--bootstrap-draws 200] [--repeat R]
                                    [--methods supervised,oracle,dual,sspcm[,sspcm_cache]]
                                    [--set section.field=value ...] [--quick]

For a seed it generates (once, cached under ``data/bench/seed<N>_d<difficulty>/``) a labeled set
whose first ``--labeled`` persons are labeled, an unlabeled pool about twenty times larger (the
labeled images are in the pool too, paper protocol), a separate validation set, and
``all_labels.json`` (every label of both, for the oracle).

An epoch is one pass over the unlabeled pool (the paper's; the labeled set is resampled), so the
previous-epoch teachers of PCM are a whole pool-pass old; every method, the supervised ones
included, trains ``--epochs`` such epochs with the LR dropped x0.1 after epochs int(0.7 E) and
int(0.9 E) (the paper's 70 and 90 of 100: epochs 7 and 9 of the default 10; 3 and 4 of 5, i.e. 60 %
and 80 % of the steps).
``oracle`` is the supervised network trained on every label of the pool: the ceiling the pool
could lift the baseline to. Supervised and oracle are also scored at the first LR drop, to show
whether they have plateaued.

Default regime (``DEFAULTS``): one upright, untruncated person per image (difficulty 0), 200
labeled persons, a pool of 5000 images (about 4900 persons with the labeled images, 24x the
labeled set), burn-ins of 500 steps, 10 epochs (1530 steps per method; LR drops after epochs 7
and 9, the paper's 70 % and 90 %), no flipped views (``configs/synthetic_benchmark.yaml``: the
figures' left limbs are drawn darker, a cue that flips with swapped labels would contradict).
Measured on seeds 0 and 1 (docs/benchmarks.md, "200 labeled persons, 10 passes"): supervised
0.239 and 0.250, the oracle 2.2x that, Dual +38 % and SSPCM +49 % on average, SSPCM - Dual +0.032
and +0.021 (each interval above 0); seed 2 without SSPCM yet: supervised 0.211, Dual +62 %. About
an hour per seed on 2 cores. The earlier default
(250 labeled persons, 5 epochs) gave Dual +16 % and SSPCM +22 % on three seeds, with a
baseline that still gained from its LR drops. With flips the baseline fell to 0.11-0.18 and the
margins shrank.

Start: the paper initialises every network from ImageNet weights; we have none offline, so
supervised burn-in networks (labeled persons only, cached with the data) stand in for that
start. The reported networks (supervised C, Dual's A, SSPCM's C) all start from burn-in ``a``;
their teachers from independent burn-ins (Dual's B from ``b``; SSPCM's B from ``b`` and A from
``c``), as separately initialised networks would. Then every method trains the same optimizer
steps with the same tiny CPU networks and the same schedule, each in a fresh process (its own
peak memory), and one table prints AP, AP50, AP75 on the validation set, wall time, time per
step and peak RSS, then each margin (SSPCM - Dual, Dual - supervised, SSPCM - supervised) with
a 95 % interval from a paired bootstrap over the validation images (``bench.paired_bootstrap``).
``sspcm_cache`` is SSPCM with the previous-epoch teachers read from the pseudo-label store.

Run-to-run spread: ``--repeat R`` (R > 0) trains every method again on the same data from the
same burn-in networks with another training seed (batch order, views, SSCO draws), into
``seed<N>_r<R>/``; repeat 0 (the default) is ``seed<N>/``. Margins as small as the benchmark's
move by about their own size between repeats, so compare means over repeats.

It also measures the pseudo labels themselves against the synthetic truth on the pool (OKS AP
of A_t, of B_t and of PCM's corrected label, built from the last two epochs' teachers), plus
PCM's statistics (kept-joint fraction, pair choice, position inconsistency) and a table of
per-joint label accuracy by position inconsistency, with the share of left/right swaps.
With ``--json`` the last line is one JSON object:
``{"run": {"seed": ..., "repeat": ..., "train_seed": ..., "steps": ...}, "burn_in": {...},
"supervised": {"AP": ...}, "dual": {...}, "sspcm": {...}, "pseudo_labels": {...},
"margins": {"sspcm-dual": {"diff": ..., "ci95": [...], "p_a_above_b": ...}, ...}}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from pipeline.cli import setup_logging
from pipeline.config import config_to_dict, load_config
from pipeline.data.skeletons import COCO17
from pipeline.data.synthetic.benchmark_sets import make_benchmark_sets, pool_persons
from pipeline.data.synthetic.figure import LEFT_SHADE
from pipeline.evaluation.inversions import inversion_summary
from pipeline.evaluation.label_quality import pseudo_label_quality
from pipeline.evaluation.paired_bootstrap import paired_bootstrap
from pipeline.method.schedule import LocalExecutor
from pipeline.reporting.benchmark_report import benchmark_report
from pipeline.run_setup import RunData, build_local, load_run_data, pcm_config
from pipeline.store.atomic_files import holds_json, write_json_atomic
from pipeline.store.checkpoints import list_checkpoints
from pipeline.trainer import Trainer

log = logging.getLogger("bench.semi_supervised")
REPO = Path(__file__).resolve().parents[1]

# The default regime (the module docstring says why).
DEFAULTS = {
    "difficulty": 0.0,
    "max_people": 1,
    "labeled": 200,
    "labeled_images": 280,
    "pool_images": 5000,
    "val_images": 500,
    "epochs": 10,
    "burn_in_steps": 500,
    "left_shade": LEFT_SHADE,
}
# Relative cost of one step of each variant on CPU (the slowest are started first).
COST_PER_STEP = {"supervised": 1.0, "oracle": 1.0, "dual": 8.0, "sspcm": 12.0, "sspcm_cache": 11.0}


def data_tag(args: argparse.Namespace) -> str:
    """The data folder of a seed: ``seed<N>_d<difficulty>[_mp<max people>][_ls<left shade>]``
    (``_mp3`` and ``_ls0.6``, the generator's own defaults, are left out)."""
    tag = f"seed{args.seed}_d{args.difficulty:g}"
    tag += f"_mp{args.max_people}" if args.max_people != 3 else ""
    return tag + (f"_ls{args.left_shade:g}" if args.left_shade != LEFT_SHADE else "")


def steps_per_epoch(args: argparse.Namespace, data: dict[str, Path]) -> int:
    """Optimizer steps of one epoch: one pass over the unlabeled pool (the paper's epoch), the
    same for every method so that all train the same steps under the same LR schedule."""
    return args.steps_per_epoch or max(1, pool_persons(data) // args.batch_size)


def data_overrides(args: argparse.Namespace, data: dict[str, Path], variant: str = "supervised") -> list[str]:
    if variant == "oracle":  # every label of the pool (and of the labeled set), same network and steps
        labeled = [
            f"data.labeled_ann={data['all'] / 'all_labels.json'}",
            f"data.labeled_images={data['all']}",
            "data.num_labeled=null",
        ]
    else:
        labeled = [
            f"data.labeled_ann={data['labeled'] / 'annotations.json'}",
            f"data.labeled_images={data['labeled'] / 'images'}",
            f"data.num_labeled={args.labeled}",
        ]
    return [
        *labeled,
        f"data.unlabeled_ann={data['pool'] / 'annotations.json'}",
        f"data.unlabeled_images={data['pool'] / 'images'}",
        f"data.val_ann={data['val'] / 'annotations.json'}",
        f"data.val_images={data['val'] / 'images'}",
        f"optim.batch_size={args.batch_size}",
        f"optim.unlabeled_batch_size={args.batch_size}",
        "train.log_every=50",
        f"train.num_threads={args.threads}",
    ]


# Which burn-in network each role of each method starts from. The reported networks
# (supervised C, Dual's A, SSPCM's C) all start from the same weights ``a``. The teachers that
# teach them start from other burn-ins, as independently initialised networks would in the
# paper: Dual's B from ``b``; SSPCM's B from ``b`` and its A from a third burn-in ``c``. (With A
# a copy of C, half of C's PCM label would at first be C's own prediction.)
BURN_IN_OF_ROLE = {
    "supervised": {"student": "a"},
    "oracle": {"student": "a"},
    "dual": {"teacher_a": "a", "teacher_b": "b"},
    "sspcm": {"teacher_a": "c", "teacher_b": "b", "student": "a"},
}
BURN_IN_SALTS = {"a": 1, "b": 2, "c": 3}  # seed offsets of the burn-in networks


def burn_ins_of(variant: str) -> dict[str, str]:
    """Role -> burn-in network of ``variant`` (its own entry, else its method's)."""
    return BURN_IN_OF_ROLE.get(variant, BURN_IN_OF_ROLE[VARIANTS[variant][0]])


def reported_network(variant: str) -> str:
    """The one network whose AP the benchmark reports for ``variant``: Dual's A, else the student."""
    return "teacher_a" if VARIANTS[variant][0] == "dual" else "student"


def training_seed(args: argparse.Namespace) -> int:
    """``train.seed`` of every method's run: the data seed for repeat 0, offset for each repeat."""
    return args.seed + 1000 * args.repeat


def run_dir(args: argparse.Namespace, variant: str) -> Path:
    """Output directory of one variant's run: ``<out>/seed<N>[_r<R>]/<variant>``."""
    tag = f"seed{args.seed}" + (f"_r{args.repeat}" if args.repeat else "")
    return Path(args.out_dir) / tag / variant


def method_overrides(
    args: argparse.Namespace, data: dict[str, Path], variant: str, out: Path, burn_in: dict[str, Path]
) -> list[str]:
    epochs = args.epochs
    method = VARIANTS[variant][0]
    starts = burn_ins_of(variant) if burn_in else {}
    inits = [f"model.{role}_init={burn_in[name]}" for role, name in starts.items()]
    return [
        *data_overrides(args, data, variant),
        f"method.name={method}",
        f"optim.epochs={epochs}",
        f"optim.steps_per_epoch={steps_per_epoch(args, data)}",
        f"optim.lr_steps=[{lr_drop_epoch(args)},{int(epochs * 0.9)}]",
        f"train.seed={training_seed(args)}",
        f"train.out_dir={out}",
        *inits,
        *args.set,
    ]


def burn_in_dir(args: argparse.Namespace, data: dict[str, Path], name: str) -> Path:
    """Where burn-in network ``name`` is cached, next to the data: one folder per labeled count,
    step count, batch size, LR and set of non-method ``--set`` overrides (a short hash of them),
    so an ablation such as ``--set augment.flip_prob=0`` trains its own burn-ins and leaves the
    default ones in place (``burn_in.json`` in it records the whole recipe)."""
    tag = f"burn_in_{args.burn_in_steps}_bs{args.batch_size}_l{args.labeled}_lr{args.burn_in_lr:g}"
    overrides = burn_in_overrides(args)
    if overrides:
        tag += "_set" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return data["labeled"].parent / tag / name


def burn_in_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides a burn-in depends on: all but ``method.*`` (a burn-in is
    supervised, so method ablations reuse the cached networks)."""
    return [o for o in args.set if not o.startswith("method.")]


def train_burn_in(args: argparse.Namespace, data: dict[str, Path], name: str) -> float:
    """Train burn-in network ``name`` (unless cached) and return its validation AP.

    The CPU stand-in for the paper's ImageNet initialisation: from scratch, tiny networks need
    thousands of steps before their heatmaps have peaks at all, and teachers without peaks give
    PCM nothing to keep (score mask). Every method then starts from these weights, so the
    comparison measures only what the unlabeled pool adds. Constant LR (no decay).
    """
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    out = burn_in_dir(args, data, name)
    epochs = max(1, args.burn_in_steps // 100)
    done, marker = out / "eval.json", out / "burn_in.json"
    final = out / "checkpoints" / f"step_{max(1, args.burn_in_steps // epochs) * epochs:08d}"
    overrides = burn_in_overrides(args)
    cfg = load_config(
        REPO / "configs" / "synthetic_benchmark.yaml",
        [
            *data_overrides(args, data),
            "method.name=supervised",
            f"optim.epochs={epochs}",
            f"optim.steps_per_epoch={max(1, args.burn_in_steps // epochs)}",
            "optim.lr_steps=[]",
            f"optim.lr={args.burn_in_lr}",
            f"train.seed={args.seed * 100 + BURN_IN_SALTS[name]}",
            f"train.out_dir={out}",
            "train.checkpoint_every_epochs=0",
            *overrides,
        ],
    )
    # everything the cached network depends on besides the data (the config's sections that
    # shape training, so an edit of configs/synthetic_benchmark.yaml counts too); another
    # recipe trains it again.
    recipe = {"name": name, "seed": args.seed, "labeled": args.labeled, "steps": args.burn_in_steps}
    recipe.update(batch_size=args.batch_size, lr=args.burn_in_lr, set=overrides)
    plain = config_to_dict(cfg)
    recipe["config"] = {k: plain[k] for k in ("codec", "model", "augment", "optim")}
    if not (done.is_file() and final.is_dir() and holds_json(marker, recipe)):
        if out.exists():
            log.info("burn-in %s in %s was made another way: training it again", name, out)
            shutil.rmtree(out)
        log.info("=== burn-in %s: %d supervised steps (cached in %s)", name, args.burn_in_steps, out)
        data_run = load_run_data(cfg)
        nets, pseudo = build_local(cfg, data_run)
        Trainer(cfg, data_run, nets, pseudo, LocalExecutor()).train()
        write_json_atomic(marker, recipe)
    return json.loads(done.read_text())["eval/student/AP"]


# Benchmark variants: (method, extra overrides). ``oracle`` is the supervised network trained on
# every label of the pool (the ceiling the unlabeled pool could reach); ``sspcm_cache`` is SSPCM
# with the previous-epoch teachers read from the pseudo-label store instead of frozen copies.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "supervised": ("supervised", []),
    "oracle": ("supervised", []),
    "dual": ("dual", []),
    "sspcm": ("sspcm", ["method.previous_teachers=snapshot"]),
    "sspcm_cache": ("sspcm", ["method.previous_teachers=cache"]),
}
# Variants whose AP is also measured at the first LR drop (epoch int(0.7 E)): has it plateaued?
PLATEAU_CHECKED = ("supervised", "oracle")
PLATEAU_TAG = "_at_lr_drop"
# SSPCM's run directory keeps its pseudo-label quality (``pseudo_label_quality``) in this file.
QUALITY_FILE = "pseudo_label_quality.json"


def lr_drop_epoch(args: argparse.Namespace) -> int:
    """The epoch of the first LR drop: 70 % of the epochs rounded down (the paper's 70 of 100; 7 of
    the default 10; 3 of 5, i.e. 60 % of the steps)."""
    return max(1, int(args.epochs * 0.7))


def run_method(args, data_dirs, variant: str, burn_in_runs: dict[str, Path]) -> dict:
    """Train one variant; returns its eval results, wall time, peak RSS and pseudo-label quality.

    Runs in a fresh process (see ``main``), so ``peak_rss_mb`` is this variant's own peak. For
    ``PLATEAU_CHECKED`` variants the checkpoint at the first LR drop is evaluated too
    (``results_student_at_lr_drop.json``, ``results_at_lr_drop``).
    """
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    method, extra = VARIANTS[variant]
    out = run_dir(args, variant)
    cfg = load_config(
        REPO / "configs" / "synthetic_benchmark.yaml",
        [*method_overrides(args, data_dirs, variant, out, burn_in_runs), *extra],
    )
    data = load_run_data(cfg)
    t0 = time.perf_counter()
    nets, pseudo = build_local(cfg, data)
    trainer = Trainer(cfg, data, nets, pseudo, LocalExecutor())
    results = trainer.train()
    wall = time.perf_counter() - t0
    run = {"results": results, "wall": wall, "quality": {}}
    if variant in PLATEAU_CHECKED:
        step = lr_drop_epoch(args) * trainer.steps_per_epoch
        ckpt = next((c for c in list_checkpoints(trainer.run_dir) if c.name == f"step_{step:08d}"), None)
        if ckpt is not None:
            trainer.restore(ckpt)
            run["results_at_lr_drop"] = trainer.evaluate(write=True, tag=PLATEAU_TAG)
    if variant == "sspcm" and args.pseudo_label_quality:
        pool_only = RunData(
            data.skeleton, data.labeled, [p for p in data.unlabeled if p.image_id >= 100_000], data.val
        )
        run["quality"] = pseudo_label_quality(
            list_checkpoints(trainer.run_dir),
            pool_only.unlabeled,
            data.skeleton,
            trainer.codec,
            pcm_config(cfg),
            data_dirs["pool"] / "annotations.json",
        )
        if run["quality"]:  # beside the run, for bench.repeat_summary's per-seed check of PCM
            write_json_atomic(out / QUALITY_FILE, run["quality"])
    run["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return run


def run_parallel(jobs: int, calls: list[tuple]) -> list:
    """Run ``(function, *args)`` calls in spawned child processes, ``jobs`` at a time (each its
    own peak memory, no state left behind); results in call order."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(calls))), mp_context=ctx) as pool:
        futures = [pool.submit(fn, *fn_args) for fn, *fn_args in calls]
        return [f.result() for f in futures]


MARGINS = (("sspcm", "dual"), ("dual", "supervised"), ("sspcm", "supervised"), ("oracle", "supervised"))


def margins(args: argparse.Namespace, data_dirs: dict[str, Path], table: dict) -> dict[str, dict]:
    """Paired bootstrap (``bench.paired_bootstrap``) of each margin between the methods that ran,
    on their validation results files; keys like ``"sspcm-dual"``, each with ``relative`` (the
    margin over the second method's AP). ``"<variant>-at_lr_drop"``: the final network against
    itself at the first LR drop (has it plateaued?)."""
    ann = data_dirs["val"] / "annotations.json"
    pairs = []
    for first, second in MARGINS:
        if first in table and second in table:
            files = [run_dir(args, m) / f"results_{table[m]['network']}.json" for m in (first, second)]
            pairs.append((f"{first}-{second}", files, table[second]["AP"]))
    for variant in PLATEAU_CHECKED:
        if variant in table and "AP_at_lr_drop" in table[variant]:
            final = run_dir(args, variant) / "results_student.json"
            pairs.append(
                (
                    f"{variant}-at_lr_drop",
                    [final, final.with_name(f"results_student{PLATEAU_TAG}.json")],
                    table[variant]["AP_at_lr_drop"],
                )
            )
    out = {}
    for name, files, base in pairs:
        m = paired_bootstrap(ann, *files, draws=args.bootstrap_draws, seed=args.seed)
        out[name] = {**m, "relative": m["diff"] / base if base > 0 else None}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="chooses the data and the initialisation")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument(
        "--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the unlabeled pool"
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="steps of an epoch (default: one pass over the pool)",
    )
    parser.add_argument("--burn-in-lr", type=float, default=2e-3, help="constant LR of the burn-in networks")
    parser.add_argument(
        "--burn-in-steps",
        type=int,
        default=DEFAULTS["burn_in_steps"],
        help="supervised steps of the shared starting networks (0 = every method from scratch)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="training repeat: R > 0 retrains every method with training seed SEED + 1000*R "
        "(same data and burn-in networks) into seed<N>_r<R>/",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="training processes at a time (2 x 1 thread = this 2-core machine)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--labeled", type=int, default=DEFAULTS["labeled"], help="labeled persons (first N)")
    parser.add_argument("--labeled-images", type=int, default=DEFAULTS["labeled_images"])
    parser.add_argument("--pool-images", type=int, default=DEFAULTS["pool_images"])
    parser.add_argument("--val-images", type=int, default=DEFAULTS["val_images"], help="validation images")
    parser.add_argument(
        "--methods",
        default="supervised,oracle,dual,sspcm",
        help=f"comma-separated, from: {', '.join(VARIANTS)} (sspcm_cache: previous teachers from the store)",
    )
    parser.add_argument(
        "--difficulty", type=float, default=DEFAULTS["difficulty"], help="synthetic difficulty in [0, 1]"
    )
    parser.add_argument(
        "--max-people", type=int, default=DEFAULTS["max_people"], help="persons per synthetic image: 1..N"
    )
    parser.add_argument(
        "--left-shade",
        type=float,
        default=DEFAULTS["left_shade"],
        help="brightness of the figures' left limbs against their right ones, in (0, 1]: the "
        "left/right cue (lower = stronger)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="extra config override"
    )
    parser.add_argument("--data-dir", default=str(REPO / "data" / "bench"))
    parser.add_argument("--out-dir", default=str(REPO / "runs" / "bench"))
    parser.add_argument("--no-pseudo-label-quality", dest="pseudo_label_quality", action="store_false")
    parser.add_argument(
        "--bootstrap-draws",
        type=int,
        default=200,
        help="paired bootstrap of each margin over validation images (0 = off)",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run of the whole pipeline")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.repeat < 0:
        parser.error(f"--repeat must be >= 0, got {args.repeat}")
    if not 0.0 < args.left_shade <= 1.0:
        parser.error(f"--left-shade must be in (0, 1], got {args.left_shade}")
    if args.quick:
        args.epochs, args.steps_per_epoch, args.batch_size, args.labeled = 2, 2, 4, 20
        args.burn_in_steps = min(args.burn_in_steps, 4)
        args.labeled_images, args.pool_images, args.val_images = 20, 24, 8
        args.data_dir = str(Path(args.out_dir) / "quick_data")
        args.bootstrap_draws = min(args.bootstrap_draws, 5)
    variants = args.methods.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown method {variant!r}; choose from {', '.join(VARIANTS)}")
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    data_dirs = make_benchmark_sets(
        Path(args.data_dir) / data_tag(args),
        args.seed,
        args.labeled_images,
        args.pool_images,
        args.val_images,
        args.difficulty,
        args.max_people,
        args.left_shade,
    )
    per_epoch = steps_per_epoch(args, data_dirs)
    table: dict[str, dict] = {
        "run": {
            "seed": args.seed,
            "repeat": args.repeat,
            "train_seed": training_seed(args),
            "steps": args.epochs * per_epoch,
            "steps_per_epoch": per_epoch,
            "pool_persons": pool_persons(data_dirs),
        },
    }
    burn_in_runs: dict[str, Path] = {}
    if args.burn_in_steps > 0:
        t0 = time.perf_counter()
        needed = sorted({n for v in variants for n in burn_ins_of(v).values()})
        aps = run_parallel(args.jobs, [(train_burn_in, args, data_dirs, name) for name in needed])
        burn_in_runs = {name: burn_in_dir(args, data_dirs, name) for name in needed}
        table["burn_in"] = {
            **{f"AP_{name}": ap for name, ap in zip(needed, aps)},
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    # the slowest first, so that the short runs fill the other process's idle time
    order = sorted(variants, key=lambda v: -COST_PER_STEP.get(v, 1.0))
    runs = dict(
        zip(order, run_parallel(args.jobs, [(run_method, args, data_dirs, v, burn_in_runs) for v in order]))
    )
    for variant in variants:
        run = runs[variant]
        results = run["results"]
        primary = reported_network(variant)  # one tiny network each
        row = {k: results[f"eval/{primary}/{k}"] for k in ("AP", "AP50", "AP75")}
        row["network"] = primary
        if "eval/ensemble_ab/AP" in results:
            row["ensemble_AP"] = results["eval/ensemble_ab/AP"]
        if "results_at_lr_drop" in run:
            row["AP_at_lr_drop"] = run["results_at_lr_drop"][f"eval/{primary}/AP"]
        row["wall_s"] = round(run["wall"], 1)
        row["step_s"] = round(run["wall"] / table["run"]["steps"], 3)
        row["peak_rss_mb"] = round(run["peak_rss_mb"])
        # left/right inversions on the validation set, and what they cost in AP
        results_file = run_dir(args, variant) / f"results_{primary}.json"
        row["left_right"] = inversion_summary(data_dirs["val"] / "annotations.json", results_file, COCO17)
        table[variant] = row
        if run["quality"]:
            table["pseudo_labels"] = run["quality"]
    if args.bootstrap_draws > 0:
        table["margins"] = margins(args, data_dirs, table)
    print(
        benchmark_report(
            table,
            seed=args.seed,
            repeat=args.repeat,
            train_seed=training_seed(args),
            labeled=args.labeled,
            epochs=args.epochs,
            burn_in_steps=args.burn_in_steps,
            variants=VARIANTS,
        )
    )
    if args.json:
        print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()
