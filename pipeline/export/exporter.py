"""Export PCM-corrected pseudo labels of a wild pool: a Parquet store and a COCO keypoints JSON.

:func:`export_pseudo_labels` reads a COCO-format image set (``POOL_DIR/annotations.json`` +
``POOL_DIR/images/``; person boxes from its annotations or from a COCO-results detections file),
labels every person with the teachers and PCM through a *row source* (in this process,
:func:`pipeline.export.teachers.label_pool_locally`, or Ray Data workers,
``actors.export_labeler.label_pool_on_ray``), and writes

- ``OUT/store/``: the pseudo-label store (one partition for the teachers' epoch);
- ``OUT/pseudo_labels.json``: COCO person keypoints, a labeled set for ``jobs.train``: one
  annotation per kept person; keypoint ``v`` is 2 where PCM kept the joint (and it is among the
  exported joints), else 0 with x = y = 0; ``score`` is the mean confidence of the kept joints;
  ``bbox`` the pool box;
- with ``truth`` (the pool has keypoints): ``OUT/quality.json``, OKS AP against the truth of
  A_t, B_t, their mean and PCM's label, and each joint's accuracy grouped by PCM's position
  inconsistency (``by_pi``) and by joint type (``by_joint``), see
  :mod:`pipeline.evaluation.label_accuracy`.

PCM's settings come from :func:`resolve_pcm_settings`: given values, else the training run's
``config.yaml``, else ``PCMConfig``'s defaults, so the exported labels are the ones its student saw.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.config import load_config
from pipeline.data.image_checks import check_image_files
from pipeline.data.skeletons import Skeleton
from pipeline.data.wild_pool import load_pool
from pipeline.evaluation.label_accuracy import accuracy_against_truth, format_accuracy_table
from pipeline.evaluation.metrics import coco_keypoint_eval, make_keypoint_results
from pipeline.export.teachers import ExportOptions, TeacherCheckpoints, TeacherLabeler, label_pool_locally
from pipeline.method.pcm import PCMConfig
from pipeline.store.atomic_files import write_json_atomic
from pipeline.store.pseudo_label_store import PseudoLabelRows, PseudoLabelStore

log = logging.getLogger(__name__)

# (persons, teachers, options, batch size, device) -> (store rows, raw teacher keypoints) per batch
RowSource = Callable[
    [list, TeacherCheckpoints, ExportOptions, int, str],
    Iterator[tuple[PseudoLabelRows, dict[str, np.ndarray]]],
]


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
        persons, bad = check_image_files(persons, skip_bad=True)
        if bad:
            log.warning("%s: skipped %d unreadable image(s)", images, len(bad))
    return persons, json.loads(ann.read_text())


def run_config_file(run: str | Path | None, checkpoint: str | Path | None) -> Path | None:
    """The training run's ``config.yaml``: in ``run``, or two levels above ``checkpoint``
    (``RUN/checkpoints/step_N``); None when there is none."""
    candidates = [Path(run) / "config.yaml"] if run else []
    if checkpoint:
        candidates.append(Path(checkpoint).resolve().parents[1] / "config.yaml")
    return next((c for c in candidates if c.is_file()), None)


def resolve_pcm_settings(cfg_file: Path | None, given: Mapping[str, object]) -> dict:
    """``score_thr``, ``pi_thr`` and ``label`` of PCM: each from ``given`` where it has the key
    (``pi_thr`` may be given as None: off), else from the run's ``config.yaml`` (``method.pcm_score_thr``
    / ``pcm_pi_thr`` / ``pcm_label``), else ``PCMConfig``'s defaults. Logs what it uses and where
    each came from."""
    defaults = PCMConfig()
    settings = {"score_thr": defaults.score_thr, "pi_thr": defaults.pi_thr, "label": defaults.label}
    source = {k: "default" for k in settings}
    if cfg_file is not None:
        cfg = load_config(cfg_file)
        from_run = {"score_thr": cfg.method.pcm_score_thr, "pi_thr": cfg.method.pcm_pi_thr}
        from_run["label"] = cfg.method.pcm_label
        settings.update(from_run)
        source.update({k: str(cfg_file) for k in from_run})
    for k, v in given.items():
        if k not in settings:
            raise KeyError(f"unknown PCM setting {k!r} (known: {', '.join(settings)})")
        settings[k], source[k] = v, "command line"
    log.info("PCM: %s", ", ".join(f"{k}={settings[k]} ({source[k]})" for k in settings))
    return settings


def export_pseudo_labels(
    pool_dir: Path,
    out: Path,
    ckpts: TeacherCheckpoints,
    options: ExportOptions,
    *,
    boxes: str | None = None,
    skip_bad_images: bool = False,
    store_heatmaps: bool = True,
    truth: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    rows_of: RowSource = label_pool_locally,
) -> dict:
    """Run the export (see the module docstring); returns its summary: persons, exported persons,
    kept-joint fraction, where the store and the JSON are, wall time and (``truth``) the OKS AP
    of each label source."""
    t0 = time.perf_counter()
    persons, pool_coco = load_pool_persons(pool_dir, boxes, skip_bad_images)
    log.info("pool: %d persons in %d images", len(persons), len(pool_coco.get("images", [])))
    probe = TeacherLabeler(ckpts, options, "cpu")
    hm_size = tuple(probe.codec.heatmap_size) if store_heatmaps else None
    store = PseudoLabelStore(out / "store", num_joints=probe.skeleton.num_joints, heatmap_size=hm_size)
    annotations: list[dict] = []
    raw: dict[str, list] = {"A_t": [], "B_t": [], "mean_AB": [], "PCM": []}
    ids: list[np.ndarray] = []
    box_chunks: list[np.ndarray] = []
    pis: list[np.ndarray] = []
    bar = tqdm(total=len(persons), unit="person", desc="export", file=sys.stderr, mininterval=5.0)
    for key, (rows, teachers) in enumerate(rows_of(persons, ckpts, options, batch_size, device)):
        if hm_size is None:
            rows.heatmaps = None
        store.write_batch(ckpts.epoch, key, rows)
        annotations += coco_annotations(rows, options.min_joints, first_id=len(annotations) + 1)
        if truth:
            ids.append(rows.image_id)
            box_chunks.append(rows.bbox)
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
    if truth:
        image_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        quality = {}
        for name, chunks in raw.items():
            res = keypoint_results(image_ids, np.concatenate(chunks))
            stats = coco_keypoint_eval(pool_dir / "annotations.json", res, sigmas=probe.skeleton.sigmas_array)
            quality[name] = {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}
        summary["quality_AP"] = {k: v["AP"] for k, v in quality.items()}
        log.info("pseudo labels vs truth (OKS AP): %s", summary["quality_AP"])
        by_pi, by_joint = joint_accuracy(image_ids, box_chunks, pis, raw, pool_coco, probe.skeleton)
        quality["by_pi"], quality["by_joint"] = by_pi, by_joint
        write_json_atomic(out / "quality.json", quality)
    log.info("wrote %s (%d persons) and %s", out / "pseudo_labels.json", len(annotations), out / "store")
    return summary


def joint_accuracy(
    image_ids: np.ndarray, boxes: list, pis: list, raw: dict, pool_coco: dict, skeleton: Skeleton
) -> tuple[list[dict], list[dict]]:
    """Per-joint accuracy of A_t, B_t and PCM's label against the pool's truth, grouped by the
    position inconsistency of PCM's chosen pair and by joint type (``pipeline.evaluation.label_accuracy``);
    logs both tables. ``boxes`` (N,4) and ``pis`` (N,K) come in batch chunks, as ``raw``'s labels."""
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


def coco_annotations(rows: PseudoLabelRows, min_joints: int, first_id: int) -> list[dict]:
    """COCO person annotations of the rows with at least ``min_joints`` kept joints.

    Keypoints: corrected (x, y) with v = 2 where the PCM weight is > 0, else (0, 0, 0);
    ``score`` = mean corrected confidence of the kept joints; ids from ``first_id`` on.
    """
    anns = []
    kept = rows.weights > 0
    for i in range(len(rows.image_id)):
        k = int(kept[i].sum())
        if k < max(min_joints, 1):
            continue
        kp = np.zeros((kept.shape[1], 3), dtype=np.float64)
        kp[kept[i], :2] = rows.kpts_corrected[i, kept[i], :2]
        kp[kept[i], 2] = 2
        x, y, w, h = (float(v) for v in rows.bbox[i])
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": int(rows.image_id[i]),
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "num_keypoints": k,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "score": float(rows.kpts_corrected[i, kept[i], 2].mean()),
            }
        )
    return anns


def keypoint_results(image_ids: np.ndarray, kpts: np.ndarray) -> list[dict]:
    """COCO keypoint results (category 1) from (N,) ids and (N,K,3) image-space keypoints."""
    return make_keypoint_results(np.asarray(image_ids), np.asarray(kpts, dtype=np.float64), None)
