"""Export PCM-corrected pseudo labels of a wild pool: a Parquet store and a COCO keypoints JSON.

    python -m jobs.export_pseudo_labels --run RUN_DIR --images DIR --boxes DETECTIONS.json --out OUT
        [--det-score-thr 0.5] [--ann ANN.json] [--pool POOL_DIR] [--runtime local|ray]
        [--workers N | --workers MIN:MAX] [--gpus-per-worker G] [--resume]
        [--score-thr 0.1] [--pi-thr 0.05|none] [--pcm-label mean|gaussian]
        [--joints 0,1,2] [--min-joints 3] [--truth] [--skip-bad-images] [--rows-per-file R]

The pool is a plain folder of images (``--images DIR``, every JPEG/PNG under it, recursively)
with person boxes from a detection file in the COCO results format (``--boxes``: ``image_id`` or
``file_name``, ``bbox``, ``score``, ``category_id``; detections below ``--det-score-thr`` are
left out); or a COCO json (``--ann``) naming the images (and giving the boxes when ``--boxes`` is
not given); ``--pool POOL_DIR`` is short for ``--images POOL_DIR/images --ann
POOL_DIR/annotations.json`` (as ``jobs.make_synthetic`` writes). The teachers are the run's
latest checkpoint with both teachers, and the epoch before it for PCM's previous-epoch pairs (or
``--checkpoint``). PCM's settings default to the ones the run trained with (``method.pcm_*`` in
its ``config.yaml``), so the exported labels are the ones its student saw.

Writes ``OUT/store/`` (Parquet, one partition for the teachers' epoch, readable with DuckDB's
``read_parquet('OUT/store/**/*.parquet')``), ``OUT/pseudo_labels.json`` (COCO person keypoints,
assembled from the store in a streaming pass: train on it with ``--data.labeled_ann``),
``OUT/pool/`` (the pool as Parquet) and ``OUT/export.json`` (settings and summary). An export
that stopped (a crash, a kill, a preempted machine) continues with ``--resume``: the persons the
store holds are not labeled again. With ``--truth`` (the pool's annotations hold keypoints, e.g.
synthetic) it also writes ``OUT/quality.json``: OKS AP against the truth of A_t, B_t, their mean
and PCM's corrected labels, per joint by PCM's position inconsistency (``by_pi``, to choose
``--pi-thr`` with) and by joint type (``by_joint``), with the share of left/right swaps.

``--runtime ray`` runs the export as Ray Data batch inference: images are decoded and cropped in
read tasks and labeled by an actor pool of ``--workers`` (each picks a GPU where the cluster has
them), which write the store themselves; the driver receives only per-batch counts. The last line
printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pipeline.cli import setup_logging
from pipeline.data.coco import AnnotationError
from pipeline.data.images import ImageError
from pipeline.export.exporter import export_pseudo_labels, resolve_pcm_settings, run_config_file
from pipeline.export.pool_table import PoolSource
from pipeline.export.teachers import ExportError, ExportOptions, find_teacher_checkpoints

log = logging.getLogger("jobs.export_pseudo_labels")

_UNSET = object()  # an option the user did not give


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else float(text)


def parse_workers(text: str) -> tuple[int, int]:
    """``N`` or ``MIN:MAX`` -> (min, max) labeling workers."""
    lo, _, hi = text.partition(":")
    try:
        bounds = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers: expected N or MIN:MAX, got {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"--workers: need 1 <= MIN <= MAX, got {text!r}")
    return bounds


def pool_source(args: argparse.Namespace) -> PoolSource:
    """The pool from ``--pool`` or ``--images`` [+ ``--ann``] [+ ``--boxes``]."""
    images, ann = args.images, args.ann
    if args.pool:
        images = images or str(Path(args.pool) / "images")
        ann = ann or str(Path(args.pool) / "annotations.json")
    if not images:
        raise ExportError("give the pool: --images DIR (with --boxes or --ann), or --pool POOL_DIR")
    if ann is None and not args.boxes:
        raise ExportError(f"{images}: a plain image folder needs person boxes: --boxes DETECTIONS.json")
    return PoolSource(images=images, annotations=ann, boxes=args.boxes, det_score_thr=args.det_score_thr)


def export(args: argparse.Namespace) -> dict:
    """Resolve the pool, the teachers and PCM's settings, run the export; returns the summary."""
    source = pool_source(args)
    ckpts = find_teacher_checkpoints(args.checkpoint or args.run)
    log.info("teachers: %s (previous: %s), epoch %d", ckpts.current, ckpts.previous, ckpts.epoch)
    given = {"score_thr": args.score_thr, "pi_thr": args.pi_thr, "label": args.pcm_label}
    pcm = resolve_pcm_settings(
        run_config_file(args.run, args.checkpoint), {k: v for k, v in given.items() if v is not _UNSET}
    )
    options = ExportOptions(
        score_thr=pcm["score_thr"],
        pi_thr=pcm["pi_thr"],
        label=pcm["label"],
        joints=tuple(int(j) for j in args.joints.split(",")) if args.joints else None,
        min_joints=args.min_joints,
        use_previous=not args.current_only,
    )
    run = {}
    if args.runtime == "ray":
        from actors.export_labeler import label_on_ray, prepare_on_ray

        def label(plan, done, batch_size):
            return label_on_ray(
                plan, done, batch_size, workers=args.workers, gpus_per_worker=args.gpus_per_worker
            )

        run = {"label": label, "prepare": prepare_on_ray}
    elif args.workers != (1, 1):
        raise ExportError("--workers needs --runtime ray")
    return export_pseudo_labels(
        args.out,
        source,
        ckpts,
        options,
        store_heatmaps=not args.no_heatmaps,
        truth=args.truth,
        resume=args.resume,
        skip_bad_images=args.skip_bad_images,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        rows_per_file=args.rows_per_file,
        **run,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="a training run directory (teachers: its latest checkpoint)")
    parser.add_argument("--checkpoint", help="a checkpoint directory holding teacher_a.pt and teacher_b.pt")
    parser.add_argument("--images", help="the pool's image folder (JPEG/PNG, searched recursively)")
    parser.add_argument("--boxes", help="person detections, COCO results format (default: the --ann boxes)")
    parser.add_argument("--det-score-thr", type=float, default=0.0, help="leave out detections below this")
    parser.add_argument("--ann", help="COCO json naming the pool images (and its boxes without --boxes)")
    parser.add_argument("--pool", help="a COCO-format image set: POOL/annotations.json + POOL/images/")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--score-thr", type=float, default=_UNSET, help="PCM score mask threshold (default: the run's)"
    )
    parser.add_argument(
        "--pi-thr",
        type=_optional_float,
        default=_UNSET,
        help="max position inconsistency kept, or 'none' (default: the run's, or none)",
    )
    parser.add_argument(
        "--pcm-label", choices=["mean", "gaussian"], default=_UNSET, help="PCM label (default: the run's)"
    )
    parser.add_argument("--joints", help="comma-separated joint indices to export (default: all)")
    parser.add_argument("--min-joints", type=int, default=1, help="min kept joints per exported person")
    parser.add_argument("--current-only", action="store_true", help="PCM over (A_t, B_t) only")
    parser.add_argument("--no-heatmaps", action="store_true", help="do not store corrected heatmaps")
    parser.add_argument("--truth", action="store_true", help="measure OKS AP against the pool's keypoints")
    parser.add_argument("--skip-bad-images", action="store_true", help="skip and count unreadable images")
    parser.add_argument("--runtime", choices=["local", "ray"], default="local")
    parser.add_argument(
        "--workers", type=parse_workers, default=(1, 1), help="labeling workers on Ray: N or MIN:MAX"
    )
    parser.add_argument(
        "--gpus-per-worker", type=float, help="GPUs per labeling worker (default 1 with GPUs)"
    )
    parser.add_argument("--resume", action="store_true", help="finish an export that stopped in OUT")
    parser.add_argument("--rows-per-file", type=int, default=0, help="store rows per file (0: one file)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto (a GPU where the worker has one), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the local labeler")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.run and not args.checkpoint:
        parser.error("give --run or --checkpoint")
    try:
        summary = export(args)
    except (ExportError, AnnotationError, ImageError, FileNotFoundError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
