"""Export PCM-corrected pseudo labels of a wild pool: a Parquet store and a COCO keypoints JSON.

:func:`export_pseudo_labels` takes a pool (a folder of images with a person-detection file, or a
COCO-format image set: :class:`pipeline.export.pool_table.PoolSource`), labels every person with
the teachers and PCM through a *labeling function* (in this process,
:func:`pipeline.export.labeling.label_locally`, or a Ray Data actor pool,
``actors.export_labeler.label_on_ray``), and writes into ``OUT``:

- ``export.json``: the export's settings (what a resumed export must match) and, once finished,
  its summary;
- ``pool/persons.parquet`` and ``pool/images.parquet``: the pool, one row per person / image
  (:mod:`pipeline.export.pool_table`);
- ``store/``: the pseudo-label store, one partition for the teachers' epoch, one file per labeled
  batch (compacted to fewer files at the end where the store supports it);
- ``pseudo_labels.json``: COCO person keypoints, a labeled set for ``jobs.train``, assembled from
  the store in one streaming pass (its memory does not grow with the pool): one annotation per
  person with at least ``min_joints`` kept joints, ``id`` = person_index + 1 (the same in a
  resumed export); keypoint ``v`` is 2 where PCM kept the joint (and it is among the exported
  joints), else 0 with x = y = 0; ``score`` is the mean confidence of the kept joints; ``bbox``
  the pool box;
- with ``truth`` (the pool's annotations hold keypoints): ``truth/`` side files and
  ``quality.json``, OKS AP against the truth of A_t, B_t, their mean and PCM's label, and each
  joint's accuracy grouped by PCM's position inconsistency (``by_pi``) and by joint type
  (``by_joint``), see :mod:`pipeline.evaluation.label_accuracy`.

Resuming (``resume=True``) skips the persons the store holds already: a crash or a kill loses at
most the batches in flight and never duplicates a person (see :mod:`pipeline.export.labeling`).

PCM's settings come from :func:`resolve_pcm_settings`: given values, else the training run's
``config.yaml``, else ``PCMConfig``'s defaults, so the exported labels are the ones its student saw.
"""

from __future__ import annotations

import io
import json
import logging
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.config import load_config
from pipeline.data.coco import read_json
from pipeline.data.skeletons import Skeleton
from pipeline.evaluation.label_accuracy import accuracy_against_truth, format_accuracy_table
from pipeline.evaluation.metrics import coco_keypoint_eval, make_keypoint_results
from pipeline.export.labeling import LabelPlan, label_locally
from pipeline.export.pool_table import (
    IMAGES_FILE,
    PERSONS_FILE,
    PoolSource,
    count_rows,
    iter_table,
    write_pool_tables,
)
from pipeline.export.teachers import ExportError, ExportOptions, TeacherCheckpoints, teacher_codec
from pipeline.method.pcm import PCMConfig
from pipeline.store.locations import (
    exists,
    join_location,
    list_files,
    open_for_writing,
    read_bytes,
)
from pipeline.store.pseudo_label_store import PseudoLabelStore

log = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
EXPORT_VERSION = 2

# (plan, sorted person indices already written, batch size) -> one summary dict per batch
LabelFn = Callable[[LabelPlan, np.ndarray, int], Iterator[dict[str, int]]]
# (pool source, pool directory) -> {"persons": N, "images": M}
PrepareFn = Callable[[PoolSource, Path], dict[str, int]]


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


def export_settings(source: PoolSource, ckpts: TeacherCheckpoints, options: ExportOptions, **flags) -> dict:
    """What an export is made of, as plain JSON (a resumed export must match it field by field)."""
    return {
        "version": EXPORT_VERSION,
        "pool": source.describe(),
        "teachers": str(ckpts.current),
        "previous_teachers": str(ckpts.previous) if ckpts.previous else None,
        "epoch": ckpts.epoch,
        "score_thr": options.score_thr,
        "pi_thr": options.pi_thr,
        "pcm_label": options.label,
        "joints": list(options.joints) if options.joints is not None else None,
        "min_joints": options.min_joints,
        "use_previous": options.use_previous,
        **flags,
    }


def _check_resume(out: str, settings: dict, resume: bool) -> dict | None:
    """The export record already in ``out`` (None if there is none); ExportError if there is one
    and ``resume`` is off, or if it was made with other settings (naming the field)."""
    path = join_location(out, EXPORT_FILE)
    if not exists(path):
        if exists(join_location(out, "store")):
            raise ExportError(f"{out}: holds a store but no {EXPORT_FILE}; choose another --out")
        return None
    record = json.loads(read_bytes(path))
    if not resume:
        raise ExportError(
            f"{out}: holds an export already ({path}); pass --resume to finish it, or choose another --out"
        )
    for field, value in settings.items():
        if record.get("settings", {}).get(field) != value:
            raise ExportError(
                f"{path}: field {field!r} is {record.get('settings', {}).get(field)!r}, this export has "
                f"{value!r}; resume with the same settings, or choose another --out"
            )
    return record


def write_json(location: str, obj: object) -> None:
    """Compact JSON, written whole (see :func:`pipeline.store.locations.open_for_writing`)."""
    with open_for_writing(location, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def written_persons(store: PseudoLabelStore, epoch: int) -> np.ndarray:
    """Sorted person indices the store's ``epoch`` holds (empty when it holds none)."""
    if epoch not in store.epochs():
        return np.zeros(0, np.int64)
    return np.sort(store.read_epoch(epoch, columns=["person_index"])["person_index"].to_numpy())


def export_pseudo_labels(
    out: str | Path,
    source: PoolSource,
    ckpts: TeacherCheckpoints,
    options: ExportOptions,
    *,
    store_heatmaps: bool = True,
    truth: bool = False,
    resume: bool = False,
    skip_bad_images: bool = False,
    batch_size: int = 64,
    device: str = "auto",
    threads: int = 1,
    label: LabelFn = label_locally,
    prepare: PrepareFn = write_pool_tables,
    rows_per_file: int = 0,
) -> dict:
    """Run the export (see the module docstring); returns its summary: persons, exported persons,
    kept-joint fraction, skipped persons, where the store and the JSON are, wall time and
    (``truth``) the OKS AP of each label source."""
    t0 = time.perf_counter()
    if truth and source.annotations is None:
        raise ExportError("--truth needs the pool's annotations (keypoints) to measure against")
    settings = export_settings(source, ckpts, options, store_heatmaps=store_heatmaps, truth=truth)
    out = str(out)
    record = _check_resume(out, settings, resume)
    pool_dir = join_location(out, "pool")
    if record is None or not exists(join_location(pool_dir, PERSONS_FILE)):
        counts = prepare(source, pool_dir)
        write_json(join_location(out, EXPORT_FILE), {"settings": settings, "pool": counts, "complete": False})
    codec, skeleton = teacher_codec(ckpts)
    plan = LabelPlan(
        persons=join_location(pool_dir, PERSONS_FILE),
        image_root=Path(source.images).absolute(),
        store=join_location(out, "store"),
        truth_dir=join_location(out, "truth") if truth else None,
        ckpts=ckpts,
        options=options,
        codec=codec,
        skeleton=skeleton,
        store_heatmaps=store_heatmaps,
        skip_bad_images=skip_bad_images,
        device=device,
        threads=threads,
    )
    store = plan.open_store()
    total = count_rows(plan.persons)
    done = written_persons(store, ckpts.epoch)
    if len(done):
        log.info("resuming: %d of %d persons are labeled already", len(done), total)
    bar = tqdm(total=total, initial=len(done), unit="person", desc="export", file=sys.stderr, mininterval=5.0)
    for batch in label(plan, done, batch_size):
        bar.update(batch["rows"] + batch["skipped"])
    bar.close()
    written = written_persons(store, ckpts.epoch)
    if len(np.unique(written)) != len(written):
        raise ExportError(f"{plan.store}: a person is stored twice (epoch {ckpts.epoch})")
    if len(written):  # one file (or files of rows_per_file rows) instead of one per batch
        store.compact(ckpts.epoch, rows_per_file=rows_per_file or None)
    info = {
        "description": "SSPCM pseudo labels (PCM-corrected)",
        **{k: settings[k] for k in ("teachers", "previous_teachers", "score_thr", "pi_thr", "pcm_label")},
    }
    counts = write_coco_json(
        join_location(out, "pseudo_labels.json"),
        store,
        ckpts.epoch,
        join_location(pool_dir, IMAGES_FILE),
        skeleton,
        options.min_joints,
        info,
    )
    summary = {
        "persons": total,
        "labeled_persons": int(len(written)),
        "skipped_persons": int(total - len(written)),
        "exported_persons": counts["annotations"],
        "kept_joint_fraction": counts["kept_joints"] / max(total * skeleton.num_joints, 1),
        "store": join_location(out, "store"),
        "json": join_location(out, "pseudo_labels.json"),
        "wall_s": round(time.perf_counter() - t0, 2),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if truth:
        summary["quality_AP"] = measure_quality(out, store, ckpts.epoch, Path(source.annotations), skeleton)
    write_json(join_location(out, EXPORT_FILE), {"settings": settings, "summary": summary, "complete": True})
    log.info("wrote %s (%d persons) and %s", summary["json"], counts["annotations"], summary["store"])
    return summary


def write_coco_json(
    path: str,
    store: PseudoLabelStore,
    epoch: int,
    images_table: str,
    skeleton: Skeleton,
    min_joints: int,
    info: dict,
) -> dict[str, int]:
    """Write the COCO keypoints file from the store in one streaming pass (one store file and
    one batch of images in memory at a time), atomically; returns the annotation and kept-joint
    counts."""
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(skeleton.joint_names),
        "skeleton": [[skeleton.index(a) + 1, skeleton.index(b) + 1] for a, b in skeleton.edges],
    }
    counts = {"annotations": 0, "kept_joints": 0}
    columns = ["image_id", "person_index", "bbox", "kpts_corrected", "weights"]
    k = skeleton.num_joints
    with open_for_writing(path, "w") as f:
        f.write(f'{{"info":{json.dumps(info)},"categories":[{json.dumps(category)}],"images":[')
        sep = ""
        for batch in iter_table(images_table, 4096):
            for img in batch.to_pylist():
                entry = {"id": img["image_id"], "file_name": img["file_name"]}
                if img["width"] is not None:
                    entry.update(width=img["width"], height=img["height"])
                f.write(sep + json.dumps(entry, separators=(",", ":")))
                sep = ","
        f.write('],"annotations":[')
        sep = ""
        for file in store.files(epoch) if epoch in store.epochs() else []:
            for t in iter_table(file, 4096, columns):
                if not t.num_rows:
                    continue
                weights = np.stack(t["weights"].to_numpy(zero_copy_only=False))
                kpts = np.stack(t["kpts_corrected"].to_numpy(zero_copy_only=False)).reshape(-1, k, 3)
                boxes = np.stack(t["bbox"].to_numpy(zero_copy_only=False))
                for ann in coco_annotations(
                    t["image_id"].to_numpy(), t["person_index"].to_numpy(), boxes, kpts, weights, min_joints
                ):
                    f.write(sep + json.dumps(ann, separators=(",", ":")))
                    sep = ","
                    counts["annotations"] += 1
                    counts["kept_joints"] += ann["num_keypoints"]
        f.write("]}")
    return counts


def measure_quality(
    out: str, store: PseudoLabelStore, epoch: int, truth_ann: Path, skeleton: Skeleton
) -> dict:
    """OKS AP against the pool's truth of A_t, B_t, their mean and PCM's label, and the joint
    tables (written to ``out/quality.json``); holds the pool's labels in memory (a measurement on
    a pool with ground truth, not a step of a large export)."""
    rows = store.read_rows(epoch)
    order = np.argsort(rows.person_index)
    side = pa.concat_tables(
        [pq.read_table(io.BytesIO(read_bytes(f))) for f in list_files(join_location(out, "truth"), "part-")]
    )
    index = side["person_index"].to_numpy()
    mean_ab = np.stack(side["kpts_mean_ab"].to_numpy(zero_copy_only=False)).reshape(len(index), -1, 3)
    _, last = np.unique(index[::-1], return_index=True)  # one side row per person (the latest)
    keep = len(index) - 1 - last
    by_person = dict(zip(index[keep].tolist(), keep.tolist()))
    persons = rows.person_index[order]
    raw = {
        "A_t": rows.kpts_a[order],
        "B_t": rows.kpts_b[order],
        "mean_AB": mean_ab[[by_person[int(p)] for p in persons]],
        "PCM": rows.kpts_corrected[order],
    }
    image_ids = rows.image_id[order]
    quality = {}
    for name, kpts in raw.items():
        stats = coco_keypoint_eval(truth_ann, keypoint_results(image_ids, kpts), sigmas=skeleton.sigmas_array)
        quality[name] = {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}
    aps = {k: v["AP"] for k, v in quality.items()}
    log.info("pseudo labels vs truth (OKS AP): %s", aps)
    raw_chunks = {k: [v] for k, v in raw.items()}
    by_pi, by_joint = joint_accuracy(
        image_ids, [rows.bbox[order]], [rows.pi[order]], raw_chunks, read_json(truth_ann), skeleton
    )
    quality["by_pi"], quality["by_joint"] = by_pi, by_joint
    write_json(join_location(out, "quality.json"), quality)
    return aps


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


def coco_annotations(
    image_id: np.ndarray,
    person_index: np.ndarray,
    bbox: np.ndarray,
    kpts: np.ndarray,
    weights: np.ndarray,
    min_joints: int,
) -> Iterator[dict]:
    """COCO person annotations of the persons with at least ``min_joints`` kept joints.

    Args: (N,) ids and pool positions, (N, 4) xywh boxes, (N, K, 3) corrected keypoints and
    (N, K) PCM weights, image space. Keypoints: (x, y, 2) where the weight is > 0, else (0, 0, 0);
    ``score`` = mean corrected confidence of the kept joints; ``id`` = person_index + 1.
    """
    kept = weights > 0
    for i in range(len(image_id)):
        k = int(kept[i].sum())
        if k < max(min_joints, 1):
            continue
        kp = np.zeros((kept.shape[1], 3), dtype=np.float64)
        kp[kept[i], :2] = kpts[i, kept[i], :2]
        kp[kept[i], 2] = 2
        x, y, w, h = (float(v) for v in bbox[i])
        yield {
            "id": int(person_index[i]) + 1,
            "image_id": int(image_id[i]),
            "category_id": 1,
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": 0,
            "num_keypoints": k,
            "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
            "score": float(kpts[i, kept[i], 2].mean()),
        }


def keypoint_results(image_ids: np.ndarray, kpts: np.ndarray) -> list[dict]:
    """COCO keypoint results (category 1) from (N,) ids and (N,K,3) image-space keypoints."""
    return make_keypoint_results(np.asarray(image_ids), np.asarray(kpts, dtype=np.float64), None)
