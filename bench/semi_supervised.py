"""Does unlabeled data help? Supervised vs Dual Network vs SSPCM on the synthetic benchmark.

    python -m bench.semi_supervised --seed N [--json] [--steps 450] [--burn-in-steps 1500] [--threads 2]
                                    [--methods supervised,dual,sspcm[,sspcm_cache]] [--bootstrap-draws 200]
                                    [--repeat R] [--set section.field=value ...] [--quick]

For a seed it generates (once, cached under ``data/bench/seed<N>_d<difficulty>/``) a labeled set
whose first ``--labeled`` persons are labeled, an unlabeled pool about ten times larger (the
labeled images are in the pool too, paper protocol), and a separate validation set.

Start: the paper initialises every network from ImageNet weights; we have none offline, so
supervised burn-in networks (labeled persons only, cached with the data) stand in for that
start. The reported networks (supervised C, Dual's A, SSPCM's C) all start from burn-in ``a``;
their teachers from independent burn-ins (Dual's B from ``b``; SSPCM's B from ``b`` and A from
``c``), as separately initialised networks would. Then every method trains ``--steps`` optimizer
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
import json
import logging
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench.paired_bootstrap import paired_bootstrap
from jobs.cli import setup_logging
from pipeline.checkpoints import list_checkpoints
from pipeline.config import load_config
from pipeline.evaluation import coco_keypoint_eval, make_keypoint_results
from pipeline.heatmaps import heatmap_to_image
from pipeline.label_accuracy import accuracy_against_truth, format_accuracy_table
from pipeline.models import build_model
from pipeline.pcm import correct_pseudo_labels, pcm_statistics
from pipeline.schedule import LocalExecutor
from pipeline.synthetic import generate_dataset
from pipeline.topdown_data import EvalDataset
from pipeline.trainer import RunData, Trainer, build_local, load_run_data, pcm_config

log = logging.getLogger("bench.semi_supervised")
REPO = Path(__file__).resolve().parents[1]


def make_data(
    root: Path, seed: int, labeled_images: int, pool_images: int, val_images: int, difficulty: float = 1.0
) -> dict[str, Path]:
    """Generate (or reuse) the three synthetic sets of one benchmark seed; image ids are disjoint."""
    sets = {"labeled": (labeled_images, 1), "pool": (pool_images, 100_000), "val": (val_images, 1_000_000)}
    for name, (n, start) in sets.items():
        ann = root / name / "annotations.json"
        if ann.is_file() and len(json.loads(ann.read_text())["images"]) == n:
            continue
        log.info("generating %s: %d images (seed %d)", name, n, seed)
        generate_dataset(
            root / name, seed=seed * 7919 + 11, num_images=n, start_id=start, workers=2, difficulty=difficulty
        )
    return {name: root / name for name in sets}


def data_overrides(args: argparse.Namespace, data: dict[str, Path]) -> list[str]:
    return [
        f"data.labeled_ann={data['labeled'] / 'annotations.json'}",
        f"data.labeled_images={data['labeled'] / 'images'}",
        f"data.num_labeled={args.labeled}",
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
    "dual": {"teacher_a": "a", "teacher_b": "b"},
    "sspcm": {"teacher_a": "c", "teacher_b": "b", "student": "a"},
}
BURN_IN_SALTS = {"a": 1, "b": 2, "c": 3}  # seed offsets of the burn-in networks


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
    args: argparse.Namespace, data: dict[str, Path], method: str, out: Path, burn_in: dict[str, Path]
) -> list[str]:
    epochs = args.epochs
    starts = BURN_IN_OF_ROLE[method] if burn_in else {}
    inits = [f"model.{role}_init={burn_in[name]}" for role, name in starts.items()]
    return [
        *data_overrides(args, data),
        f"method.name={method}",
        f"optim.epochs={epochs}",
        f"optim.steps_per_epoch={max(1, args.steps // epochs)}",
        f"optim.lr_steps=[{int(epochs * 0.7)},{int(epochs * 0.9)}]",
        f"train.seed={training_seed(args)}",
        f"train.out_dir={out}",
        *inits,
        *args.set,
    ]


def burn_in(
    args: argparse.Namespace, data: dict[str, Path], names: list[str]
) -> tuple[dict[str, Path], dict[str, float]]:
    """Supervised networks ``names`` (of ``BURN_IN_SALTS``) trained on the labeled set only,
    cached next to the data.

    The CPU stand-in for the paper's ImageNet initialisation: from scratch, tiny networks need
    thousands of steps before their heatmaps have peaks at all, and teachers without peaks give
    PCM nothing to keep (score mask). Every method then starts from these weights, so the
    comparison measures only what the unlabeled pool adds. Constant LR (no decay).
    Returns the run directories and the validation AP of each burn-in network.
    """
    runs, start_ap = {}, {}
    epochs = max(1, args.burn_in_steps // 100)
    for name in names:
        salt = BURN_IN_SALTS[name]
        out = data["labeled"].parent / f"burn_in_{args.burn_in_steps}_bs{args.batch_size}" / name
        runs[name] = out
        done = out / "eval.json"
        final = out / "checkpoints" / f"step_{max(1, args.burn_in_steps // epochs) * epochs:08d}"
        if not (done.is_file() and final.is_dir()):
            log.info("=== burn-in %s: %d supervised steps (cached in %s)", name, args.burn_in_steps, out)
            cfg = load_config(
                REPO / "configs" / "synthetic_benchmark.yaml",
                [
                    *data_overrides(args, data),
                    "method.name=supervised",
                    f"optim.epochs={epochs}",
                    f"optim.steps_per_epoch={max(1, args.burn_in_steps // epochs)}",
                    "optim.lr_steps=[]",
                    f"optim.lr={args.burn_in_lr}",
                    f"train.seed={args.seed * 100 + salt}",
                    f"train.out_dir={out}",
                    "train.checkpoint_every_epochs=0",
                    *args.set,
                ],
            )
            data_run = load_run_data(cfg)
            nets, pseudo = build_local(cfg, data_run)
            Trainer(cfg, data_run, nets, pseudo, LocalExecutor()).train()
        start_ap[name] = json.loads(done.read_text())["eval/student/AP"]
    return runs, start_ap


def pseudo_label_quality(trainer: Trainer, data: RunData, pool_ann: Path) -> dict:
    """OKS AP of A_t, B_t and the PCM label on the pool, against the synthetic ground truth.

    The current teachers are the final ones; the previous-epoch teachers come from the
    second-to-last checkpoint. All predictions are made on the un-augmented view of each pool
    person, exactly as PCM sees an easy view. Also scores every labelled joint (OKS similarity,
    ``pipeline.label_accuracy``), grouped by PCM's position inconsistency (``by_pi``) and by
    joint type (``by_joint``), with the share of left/right swaps.
    """
    cfg, codec = trainer.cfg, trainer.codec
    ckpts = list_checkpoints(trainer.run_dir)  # one per epoch end (plus the initial state)
    if len(ckpts) < 2:
        return {}
    models = {}
    for tag, ckpt in (("t", ckpts[-1]), ("prev", ckpts[-2])):
        for role in ("teacher_a", "teacher_b"):
            state = torch.load(ckpt / f"{role}.pt", weights_only=False)
            m = build_model(state["spec"]["model_name"], state["spec"]["num_joints"])
            m.load_state_dict(state["model"])
            models[f"{role}_{tag}"] = m.eval()
    ds = EvalDataset(data.unlabeled, codec, data.skeleton)
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=False)
    pcm_cfg = pcm_config(cfg)
    preds: dict[str, list] = {"A_t": [], "B_t": [], "PCM": [], "mean_AB": []}
    ids, stats, pis, rows = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            x = batch["images"]
            hm = {k: m(x) for k, m in models.items()}
            out = correct_pseudo_labels(
                hm["teacher_a_t"], hm["teacher_b_t"], hm["teacher_a_prev"], hm["teacher_b_prev"], pcm_cfg
            )
            stats.append(pcm_statistics(out))
            maps = {
                "A_t": hm["teacher_a_t"],
                "B_t": hm["teacher_b_t"],
                "PCM": out.heatmaps,
                "mean_AB": (hm["teacher_a_t"] + hm["teacher_b_t"]) / 2,
            }
            for name, h in maps.items():
                kpts_hm, scores = codec.decode(h.numpy())
                xy = heatmap_to_image(kpts_hm, batch["matrix"].numpy(), codec.input_size, codec.heatmap_size)
                preds[name].append(np.concatenate([xy, scores[..., None]], axis=-1))
            ids.append(batch["image_id"].numpy())
            pis.append(out.pi.numpy())
            rows.append(batch["index"].numpy())
    image_ids = np.concatenate(ids)
    quality: dict = {}
    for name, chunks in preds.items():
        res = make_keypoint_results(image_ids, np.concatenate(chunks), None)
        quality[name] = coco_keypoint_eval(pool_ann, res, sigmas=data.skeleton.sigmas_array)["AP"]
    quality["pcm_stats"] = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
    boxes = np.stack([data.unlabeled[i].bbox_xywh for i in np.concatenate(rows)])
    labels = {name: np.concatenate(preds[name]) for name in ("A_t", "B_t", "PCM")}
    pool_coco = json.loads(pool_ann.read_text())
    quality["by_pi"], quality["by_joint"] = accuracy_against_truth(
        labels, np.concatenate(pis), image_ids, boxes, pool_coco, data.skeleton
    )
    return quality


# Benchmark variants: (method, extra overrides). ``sspcm_cache`` is SSPCM with the
# previous-epoch teachers read from the pseudo-label store instead of frozen copies.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "supervised": ("supervised", []),
    "dual": ("dual", []),
    "sspcm": ("sspcm", ["method.previous_teachers=snapshot"]),
    "sspcm_cache": ("sspcm", ["method.previous_teachers=cache"]),
}


def run_method(args, data_dirs, variant: str, burn_in_runs: dict[str, Path]) -> dict:
    """Train one variant; returns its eval results, wall time, peak RSS and pseudo-label quality.

    Runs in a fresh process (see ``main``), so ``peak_rss_mb`` is this variant's own peak.
    """
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    method, extra = VARIANTS[variant]
    out = run_dir(args, variant)
    cfg = load_config(
        REPO / "configs" / "synthetic_benchmark.yaml",
        [*method_overrides(args, data_dirs, method, out, burn_in_runs), *extra],
    )
    data = load_run_data(cfg)
    t0 = time.perf_counter()
    nets, pseudo = build_local(cfg, data)
    trainer = Trainer(cfg, data, nets, pseudo, LocalExecutor())
    results = trainer.train()
    wall = time.perf_counter() - t0
    quality = {}
    if variant == "sspcm" and args.pseudo_label_quality:
        pool_only = RunData(
            data.skeleton, data.labeled, [p for p in data.unlabeled if p.image_id >= 100_000], data.val
        )
        quality = pseudo_label_quality(trainer, pool_only, data_dirs["pool"] / "annotations.json")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"results": results, "wall": wall, "quality": quality, "peak_rss_mb": peak_mb}


def run_isolated(args, data_dirs, variant: str, burn_in_runs: dict[str, Path]) -> dict:
    """``run_method`` in a spawned child process (own peak memory, no state left behind)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_method, args, data_dirs, variant, burn_in_runs).result()


MARGINS = (("sspcm", "dual"), ("dual", "supervised"), ("sspcm", "supervised"))


def margins(args: argparse.Namespace, data_dirs: dict[str, Path], table: dict) -> dict[str, dict]:
    """Paired bootstrap (``bench.paired_bootstrap``) of each margin between the methods that ran,
    on their validation results files; keys like ``"sspcm-dual"``."""
    out = {}
    for first, second in MARGINS:
        if first in table and second in table:
            files = [run_dir(args, m) / f"results_{table[m]['network']}.json" for m in (first, second)]
            ann = data_dirs["val"] / "annotations.json"
            draws = args.bootstrap_draws
            out[f"{first}-{second}"] = paired_bootstrap(ann, *files, draws=draws, seed=args.seed)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="chooses the data and the initialisation")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--steps", type=int, default=450, help="optimizer steps per method")
    parser.add_argument("--burn-in-lr", type=float, default=2e-3, help="constant LR of the burn-in networks")
    parser.add_argument(
        "--burn-in-steps",
        type=int,
        default=1500,
        help="supervised steps of the two shared starting networks (0 = every method from scratch)",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="training repeat: R > 0 retrains every method with training seed SEED + 1000*R "
        "(same data and burn-in networks) into seed<N>_r<R>/",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2 = this CI-size machine)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--labeled", type=int, default=300, help="labeled persons (first N)")
    parser.add_argument("--labeled-images", type=int, default=200)
    parser.add_argument("--pool-images", type=int, default=1600)
    parser.add_argument(
        "--val-images", type=int, default=1500, help="validation images (200 leave ~0.01 AP noise in margins)"
    )
    parser.add_argument(
        "--methods",
        default="supervised,dual,sspcm",
        help=f"comma-separated, from: {', '.join(VARIANTS)} (sspcm_cache: previous teachers from the store)",
    )
    parser.add_argument(
        "--difficulty", type=float, default=0.5, help="synthetic difficulty in [0, 1] (1 = the demo set)"
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
    if args.quick:
        args.steps, args.epochs, args.batch_size, args.labeled = 4, 2, 4, 20
        args.burn_in_steps = min(args.burn_in_steps, 4)
        args.labeled_images, args.pool_images, args.val_images = 12, 24, 8
        args.data_dir = str(Path(args.out_dir) / "quick_data")
        args.bootstrap_draws = min(args.bootstrap_draws, 5)
    setup_logging(args.log_level)
    torch.set_num_threads(args.threads)
    data_dirs = make_data(
        Path(args.data_dir) / f"seed{args.seed}_d{args.difficulty:g}",
        args.seed,
        args.labeled_images,
        args.pool_images,
        args.val_images,
        args.difficulty,
    )
    variants = args.methods.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown method {variant!r}; choose from {', '.join(VARIANTS)}")
    table: dict[str, dict] = {
        "run": {
            "seed": args.seed,
            "repeat": args.repeat,
            "train_seed": training_seed(args),
            "steps": args.steps,
        },
    }
    burn_in_runs: dict[str, Path] = {}
    if args.burn_in_steps > 0:
        t0 = time.perf_counter()
        needed = sorted({n for v in variants for n in BURN_IN_OF_ROLE[VARIANTS[v][0]].values()})
        burn_in_runs, start_ap = burn_in(args, data_dirs, needed)
        table["burn_in"] = {
            **{f"AP_{name}": ap for name, ap in start_ap.items()},
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    for variant in variants:
        log.info("=== %s (seed %d, %d steps)", variant, args.seed, args.steps)
        run = run_isolated(args, data_dirs, variant, burn_in_runs)
        results = run["results"]
        primary = reported_network(variant)  # one tiny network each
        row = {k: results[f"eval/{primary}/{k}"] for k in ("AP", "AP50", "AP75")}
        row["network"] = primary
        if "eval/ensemble_ab/AP" in results:
            row["ensemble_AP"] = results["eval/ensemble_ab/AP"]
        row["wall_s"] = round(run["wall"], 1)
        row["step_s"] = round(run["wall"] / args.steps, 3)
        row["peak_rss_mb"] = round(run["peak_rss_mb"])
        table[variant] = row
        if run["quality"]:
            table["pseudo_labels"] = run["quality"]
    if args.bootstrap_draws > 0:
        table["margins"] = margins(args, data_dirs, table)
    print(
        f"\nSynthetic benchmark, seed {args.seed}"
        + (f" (repeat {args.repeat}, training seed {training_seed(args)})" if args.repeat else "")
        + f": {args.labeled} labeled persons, {args.steps} steps per method"
    )
    print(
        f"{'method':<12}{'network':<11}{'AP':>7}{'AP50':>7}{'AP75':>7}{'A+B AP':>8}{'wall s':>8}"
        f"{'s/step':>8}{'peak MB':>9}"
    )
    if "burn_in" in table:
        b = table["burn_in"]
        aps = ", ".join(f"{k[3:]} {v:.3f}" for k, v in b.items() if k.startswith("AP_"))
        print(
            f"start: burn-in networks of {args.burn_in_steps} supervised steps, AP {aps} "
            f"(C and Dual's A start from a), {b['wall_s']:.0f} s (0 when cached)"
        )
    for method, row in table.items():
        if method in ("run", "pseudo_labels", "burn_in", "margins"):
            continue
        ens = row.get("ensemble_AP")
        print(
            f"{method:<12}{row['network']:<11}{row['AP']:>7.3f}{row['AP50']:>7.3f}{row['AP75']:>7.3f}"
            f"{(f'{ens:.3f}' if ens is not None else '-'):>8}{row['wall_s']:>8.0f}{row['step_s']:>8.2f}"
            f"{row['peak_rss_mb']:>9.0f}"
        )
    if "pseudo_labels" in table:
        q = table["pseudo_labels"]
        print(
            f"pseudo labels on the pool (OKS AP vs truth): A_t {q['A_t']:.3f}  B_t {q['B_t']:.3f}  "
            f"mean(A_t,B_t) {q['mean_AB']:.3f}  PCM {q['PCM']:.3f}"
        )
        print("PCM statistics: " + ", ".join(f"{k} {v:.3f}" for k, v in q["pcm_stats"].items()))
        print(
            "pseudo labels vs truth, joint by joint (ks: OKS similarity; ok: ks >= 0.5; "
            "swap: wrong, but right as the mirror joint), by PCM's position inconsistency:"
        )
        print(format_accuracy_table(q["by_pi"], ("A_t", "B_t", "PCM")))
    for pair, m in table.get("margins", {}).items():
        print(
            f"margin {pair}: {m['diff']:+.4f} AP, 95 % interval [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}], "
            f"above in {100 * m['p_a_above_b']:.0f} % of {m['draws']} resamples of the val images"
        )
    if args.json:
        print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()
