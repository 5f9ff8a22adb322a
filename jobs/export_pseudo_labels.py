"""Export PCM-corrected pseudo labels of a wild pool: a Parquet store and a COCO keypoints JSON.

    python -m jobs.export_pseudo_labels --run RUN_DIR --pool POOL_DIR --out OUT_DIR \\
        [--boxes DETECTIONS.json] [--score-thr 0.1] [--pi-thr 0.05|none] [--pcm-label mean|gaussian] \\
        [--joints 0,1,2] [--min-joints 3] [--runtime local|ray] [--truth]

POOL_DIR is a COCO-format image set (``POOL_DIR/annotations.json`` + ``POOL_DIR/images/``, as
``jobs.make_synthetic`` writes); the person boxes come from its annotations, or from a
COCO-results detections file with ``--boxes``. The teachers are the run's latest checkpoint
with both teachers, and the epoch before it for PCM's previous-epoch pairs (or ``--checkpoint``).
PCM's settings (score threshold, PI threshold, label) default to the ones the run trained with
(``method.pcm_*`` in its ``config.yaml``), so the exported labels are the ones its student saw.

Writes ``OUT_DIR/store/`` (Parquet, one partition for the teachers' epoch, readable with
DuckDB's ``read_parquet('OUT_DIR/store/**/*.parquet')``) and ``OUT_DIR/pseudo_labels.json``
(COCO person keypoints: train on it with ``--data.labeled_ann``). With ``--truth`` (the pool has
keypoint annotations, e.g. synthetic) it also writes ``OUT_DIR/quality.json``: OKS AP against
the truth of A_t, B_t, their mean and PCM's corrected labels, and (``by_pi``) each joint's OKS
similarity to the truth grouped by PCM's position inconsistency, to choose ``--pi-thr`` with,
plus (``by_joint``) the same per joint type, with the share of left/right swaps
(``pipeline.evaluation.label_accuracy``). The last line printed is a JSON
summary. ``--runtime ray`` streams the pool through Ray Data (teachers on CPU/GPU workers).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from pipeline.cli import setup_logging
from pipeline.export.exporter import export_pseudo_labels, resolve_pcm_settings, run_config_file
from pipeline.export.teachers import ExportOptions, find_teacher_checkpoints

log = logging.getLogger("jobs.export_pseudo_labels")

_UNSET = object()  # an option the user did not give


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else float(text)


def export(args: argparse.Namespace) -> dict:
    """Resolve the teachers and PCM's settings, run the export; returns the summary."""
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
    if args.runtime == "ray":
        from actors.export_labeler import label_pool_on_ray as rows_of
    else:
        from pipeline.export.teachers import label_pool_locally as rows_of
    return export_pseudo_labels(
        Path(args.pool),
        Path(args.out),
        ckpts,
        options,
        boxes=args.boxes,
        skip_bad_images=args.skip_bad_images,
        store_heatmaps=not args.no_heatmaps,
        truth=args.truth,
        batch_size=args.batch_size,
        device=args.device,
        rows_of=rows_of,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="a training run directory (teachers: its latest checkpoint)")
    parser.add_argument("--checkpoint", help="a checkpoint directory holding teacher_a.pt and teacher_b.pt")
    parser.add_argument("--pool", required=True, help="COCO-format image set: annotations.json + images/")
    parser.add_argument("--boxes", help="COCO-results person detections (default: the pool's boxes)")
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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.run and not args.checkpoint:
        parser.error("give --run or --checkpoint")
    summary = export(args)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
