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
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.cli import setup_logging
from pipeline.config import load_config
from pipeline.data.synthetic import write_json_atomic
from pipeline.data.topdown import EvalDataset
from pipeline.data.wild_pool import load_pool
from pipeline.evaluation.label_accuracy import accuracy_against_truth, format_accuracy_table
from pipeline.evaluation.metrics import coco_keypoint_eval
from pipeline.export.teachers import (
    ExportOptions,
    TeacherCheckpoints,
    TeacherLabeler,
    coco_annotations,
    find_teacher_checkpoints,
    keypoint_results,
)
from pipeline.method.pcm import PCMConfig
from pipeline.store.pseudo_label_store import PseudoLabelRows, PseudoLabelStore

log = logging.getLogger("jobs.export_pseudo_labels")


def load_pool_persons(pool_dir: Path, boxes: str | None, skip_bad: bool) -> tuple[list, dict]:
    """The pool's persons (boxes from annotations or detections) and its COCO json."""
    ann = pool_dir / "annotations.json"
    if not ann.is_file():
        raise FileNotFoundError(f"{pool_dir}: no annotations.json (a COCO-format image set is expected)")
    images = pool_dir / "images"
    if boxes:
        pool = load_pool(image_dir=images, image_list_json=ann, detections_json=boxes)
    else:
        pool = load_pool(image_dir=images, annotations_json=ann)
    persons = list(pool)
    if skip_bad:
        from pipeline.data.coco import check_image_files

        persons, bad = check_image_files(persons, skip_bad=True)
        if bad:
            log.warning("%s: skipped %d unreadable image(s)", images, len(bad))
    return persons, json.loads(ann.read_text())


class _BoxViews(torch.utils.data.Dataset):
    """EvalDataset items plus the pool position, box and file name of each person."""

    def __init__(self, persons: list, labeler: TeacherLabeler):
        self.persons = persons
        self.views = EvalDataset(persons, labeler.codec, labeler.skeleton)

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, i: int) -> dict:
        item = self.views[i]
        p = self.persons[i]
        return {
            **item,
            "index": i,
            "bbox": torch.as_tensor(np.asarray(p.bbox_xywh, dtype=np.float32)),
            "image_file": Path(str(p.image_path)).name,
        }


def _local_rows(
    persons: list, ckpts: TeacherCheckpoints, options: ExportOptions, batch_size: int, device: str
) -> Iterator[tuple[PseudoLabelRows, dict]]:
    labeler = TeacherLabeler(ckpts, options, device)
    loader = torch.utils.data.DataLoader(_BoxViews(persons, labeler), batch_size=batch_size, shuffle=False)
    for batch in loader:
        yield labeler.label_batch(batch)


class _RayLabeler:
    """Ray Data map_batches worker: box views + teachers + PCM for a batch of pool positions."""

    def __init__(self, persons: list, ckpts: TeacherCheckpoints, options: ExportOptions, device: str):
        torch.set_num_threads(1)
        self.labeler = TeacherLabeler(ckpts, options, device)
        self.views = _BoxViews(persons, self.labeler)

    def __call__(self, batch: dict) -> dict:
        items = [self.views[int(i)] for i in batch["id"]]
        collated = torch.utils.data.default_collate(items)
        rows, raw = self.labeler.label_batch(collated)
        out = {k: v for k, v in rows.__dict__.items() if k != "image_file"}
        out["image_file"] = np.asarray(rows.image_file, dtype=object)
        out.update({f"raw_{k}": v for k, v in raw.items()})
        return out


def _ray_rows(
    persons: list, ckpts: TeacherCheckpoints, options: ExportOptions, batch_size: int, device: str
) -> Iterator[tuple[PseudoLabelRows, dict]]:
    import os

    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False)
    gpus = 1 if device.startswith("cuda") else 0
    ds = ray.data.range(len(persons)).map_batches(
        _RayLabeler,
        fn_constructor_args=(persons, ckpts, options, device),
        batch_size=batch_size,
        concurrency=1,
        num_cpus=0.5,
        num_gpus=gpus,
    )
    fields = PseudoLabelRows.__dataclass_fields__
    for b in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        arrays = {k: b[k] for k in fields if k != "image_file"}
        rows = PseudoLabelRows(**arrays, image_file=list(b["image_file"]))
        yield rows, {k[4:]: b[k] for k in b if k.startswith("raw_")}


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else float(text)


def _run_config_file(args: argparse.Namespace) -> Path | None:
    """The training run's ``config.yaml``: in ``--run``, or two levels above ``--checkpoint``
    (``RUN/checkpoints/step_N``)."""
    candidates = [Path(args.run) / "config.yaml"] if args.run else []
    if args.checkpoint:
        candidates.append(Path(args.checkpoint).resolve().parents[1] / "config.yaml")
    return next((c for c in candidates if c.is_file()), None)


def pcm_settings(args: argparse.Namespace) -> dict:
    """``score_thr``, ``pi_thr`` and ``label`` of PCM: each from the command line where given,
    else from the run's ``config.yaml`` (``method.pcm_score_thr`` / ``pcm_pi_thr`` /
    ``pcm_label``), else ``PCMConfig``'s defaults. Logs what it uses and where it came from."""
    defaults = PCMConfig()
    settings = {"score_thr": defaults.score_thr, "pi_thr": defaults.pi_thr, "label": defaults.label}
    source = {k: "default" for k in settings}
    cfg_file = _run_config_file(args)
    if cfg_file is not None:
        cfg = load_config(cfg_file)
        from_run = {"score_thr": cfg.method.pcm_score_thr, "pi_thr": cfg.method.pcm_pi_thr}
        from_run["label"] = cfg.method.pcm_label
        settings.update(from_run)
        source.update({k: str(cfg_file) for k in from_run})
    given = {"score_thr": args.score_thr, "pi_thr": args.pi_thr, "label": args.pcm_label}
    for k, v in given.items():
        if v is not _UNSET:
            settings[k], source[k] = v, "command line"
    log.info("PCM: %s", ", ".join(f"{k}={settings[k]} ({source[k]})" for k in settings))
    return settings


_UNSET = object()  # an option the user did not give


def export(args: argparse.Namespace) -> dict:
    """Run the export; returns the summary that is printed as the last line."""
    t0 = time.perf_counter()
    out = Path(args.out)
    pool_dir = Path(args.pool)
    ckpts = find_teacher_checkpoints(args.checkpoint or args.run)
    log.info("teachers: %s (previous: %s), epoch %d", ckpts.current, ckpts.previous, ckpts.epoch)
    joints = tuple(int(j) for j in args.joints.split(",")) if args.joints else None
    pcm = pcm_settings(args)
    options = ExportOptions(
        score_thr=pcm["score_thr"],
        pi_thr=pcm["pi_thr"],
        label=pcm["label"],
        joints=joints,
        min_joints=args.min_joints,
        use_previous=not args.current_only,
    )
    persons, pool_coco = load_pool_persons(pool_dir, args.boxes, args.skip_bad_images)
    log.info("pool: %d persons in %d images", len(persons), len(pool_coco.get("images", [])))
    probe = TeacherLabeler(ckpts, options, "cpu")
    hm_size = tuple(probe.codec.heatmap_size) if not args.no_heatmaps else None
    store = PseudoLabelStore(out / "store", num_joints=probe.skeleton.num_joints, heatmap_size=hm_size)
    source = _ray_rows if args.runtime == "ray" else _local_rows
    annotations: list[dict] = []
    raw: dict[str, list] = {"A_t": [], "B_t": [], "mean_AB": [], "PCM": []}
    ids: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    pis: list[np.ndarray] = []
    bar = tqdm(total=len(persons), unit="person", desc="export", file=sys.stderr, mininterval=5.0)
    for key, (rows, teachers) in enumerate(source(persons, ckpts, options, args.batch_size, args.device)):
        if hm_size is None:
            rows.heatmaps = None
        store.write_batch(ckpts.epoch, key, rows)
        annotations += coco_annotations(rows, options.min_joints, first_id=len(annotations) + 1)
        if args.truth:
            ids.append(rows.image_id)
            boxes.append(rows.bbox)
            pis.append(rows.pi)
            for k, v in teachers.items():
                raw[k].append(v)
            raw["PCM"].append(rows.kpts_corrected)
        bar.update(len(rows.image_id))
    bar.close()
    coco = {
        "images": pool_coco.get("images", []),
        "annotations": annotations,
        "categories": pool_coco.get("categories") or [{"id": 1, "name": "person"}],
        "info": {
            "description": "SSPCM pseudo labels (PCM-corrected)",
            "teachers": str(ckpts.current),
            "previous_teachers": str(ckpts.previous) if ckpts.previous else None,
            "score_thr": options.score_thr,
            "pi_thr": options.pi_thr,
            "pcm_label": options.label,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "pseudo_labels.json", coco)
    kept = sum(a["num_keypoints"] for a in annotations)
    summary = {
        "persons": len(persons),
        "exported_persons": len(annotations),
        "kept_joint_fraction": kept / max(len(persons) * probe.skeleton.num_joints, 1),
        "store": str(out / "store"),
        "json": str(out / "pseudo_labels.json"),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    if args.truth:
        image_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        quality = {}
        for name, chunks in raw.items():
            res = keypoint_results(image_ids, np.concatenate(chunks))
            stats = coco_keypoint_eval(pool_dir / "annotations.json", res, sigmas=probe.skeleton.sigmas_array)
            quality[name] = {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}
        summary["quality_AP"] = {k: v["AP"] for k, v in quality.items()}
        log.info("pseudo labels vs truth (OKS AP): %s", summary["quality_AP"])
        by_pi, by_joint = _joint_accuracy(image_ids, boxes, pis, raw, pool_coco, probe.skeleton)
        quality["by_pi"], quality["by_joint"] = by_pi, by_joint
        write_json_atomic(out / "quality.json", quality)
    log.info("wrote %s (%d persons) and %s", out / "pseudo_labels.json", len(annotations), out / "store")
    return summary


def _joint_accuracy(
    image_ids, boxes: list, pis: list, raw: dict, pool_coco: dict, skeleton
) -> tuple[list[dict], list[dict]]:
    """Per-joint accuracy of A_t, B_t and PCM's label against the pool's truth, grouped by the
    position inconsistency of PCM's chosen pair and by joint type (``pipeline.evaluation.label_accuracy``);
    logs both tables."""
    if not pis:
        return [], []
    sources = ("A_t", "B_t", "PCM")
    labels = {s: np.concatenate(raw[s]) for s in sources}
    bins, joints = accuracy_against_truth(
        labels, np.concatenate(pis), image_ids, np.concatenate(boxes), pool_coco, skeleton
    )
    log.info(
        "pseudo labels vs truth by PCM's position inconsistency (ks: mean OKS similarity of a joint; "
        "ok: fraction with ks >= 0.5; swap: wrong, but right as the mirror joint); a --pi-thr drops "
        "the bins above it:\n%s\nby joint:\n%s",
        format_accuracy_table(bins, sources),
        format_accuracy_table(joints, sources),
    )
    return bins, joints


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
