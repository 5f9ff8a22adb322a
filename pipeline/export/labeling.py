"""The export's two stages, the same in this process and in Ray Data workers.

1. :func:`read_views` (the read stage, CPU): a batch of rows of ``persons.parquet`` -> the
   persons' un-augmented box views (decoded and cropped; each image decoded once per batch).
2. :class:`PoolLabelWriter` (the labeling stage, CPU or GPU): teachers + PCM on the views, then
   the batch's pseudo labels written as one atomic file of the store (and, when measuring against
   the truth, one side file); returns only a one-row summary, so whoever drives the export never
   holds the labels.

A store file's key is the smallest ``person_index`` of its batch. Every batch holds persons no
file holds yet (a resumed export leaves out the persons already written), so a person is in at
most one file; a batch that is re-run after a failure rewrites the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.data.images import ImageError, load_image, to_tensor
from pipeline.data.skeletons import Skeleton
from pipeline.data.topdown import box_view
from pipeline.export.pool_table import iter_table
from pipeline.export.teachers import ExportOptions, TeacherCheckpoints, TeacherLabeler
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.store.locations import join_location, open_for_writing
from pipeline.store.pseudo_label_store import PseudoLabelRows, PseudoLabelStore

log = logging.getLogger(__name__)

PERSON_COLUMNS = ["person_index", "image_id", "image_file", "bbox"]


@dataclass(frozen=True)
class LabelPlan:
    """Everything a labeling worker needs (picklable; no labels, no pool in memory).

    Attributes:
        persons: ``OUT/pool/persons.parquet`` (a local path or a pyarrow filesystem URI, as
            ``store`` and ``truth_dir``).
        image_root: the folder the persons' ``image_file`` names are relative to.
        store: the store directory (``OUT/store``).
        truth_dir: where side files of the teachers' raw keypoints go (``OUT/truth``), or None.
        ckpts: the teacher checkpoints; ``ckpts.epoch`` is the store partition.
        options: which labels are exported (PCM settings, joints, min joints).
        codec: the teachers' codec (input and heatmap sizes); skeleton: their skeleton.
        store_heatmaps: keep PCM's corrected heatmaps in the store.
        skip_bad_images: leave out (and count) persons whose image cannot be read, instead of failing.
        device: ``"auto"`` (a GPU where the worker has one), ``"cpu"`` or ``"cuda[:i]"``.
        threads: torch threads per labeling worker.
    """

    persons: str
    image_root: Path
    store: str
    truth_dir: str | None
    ckpts: TeacherCheckpoints
    options: ExportOptions
    codec: HeatmapCodec
    skeleton: Skeleton
    store_heatmaps: bool = True
    skip_bad_images: bool = False
    device: str = "auto"
    threads: int = 1

    def open_store(self) -> PseudoLabelStore:
        hm = tuple(self.codec.heatmap_size) if self.store_heatmaps else None
        return PseudoLabelStore(self.store, num_joints=self.skeleton.num_joints, heatmap_size=hm)


def read_views(batch: dict[str, np.ndarray], plan: LabelPlan) -> dict[str, np.ndarray]:
    """The read stage: decode and crop each person's box view.

    Args:
        batch: columns of ``persons.parquet`` for N persons (``bbox`` (N, 4) xywh image space).

    Returns:
        the same columns plus ``crops`` (N, H, W, 3) uint8 input space, ``matrix`` (N, 2, 3)
        float64 image -> input and ``ok`` (N,) bool (False: the image could not be read, only
        with ``plan.skip_bad_images``; its crop is black).
    """
    w, h = plan.codec.input_size
    n = len(batch["person_index"])
    crops = np.zeros((n, h, w, 3), np.uint8)
    matrix = np.zeros((n, 2, 3), np.float64)
    ok = np.ones(n, bool)
    boxes = np.asarray(list(batch["bbox"]), dtype=np.float64).reshape(n, 4)
    images: dict[str, np.ndarray | None] = {}
    for i, name in enumerate(batch["image_file"]):
        name = str(name)
        if name not in images:
            try:
                images[name] = load_image(plan.image_root / name)
            except ImageError as e:
                if not plan.skip_bad_images:
                    raise ImageError(f"{e} (pool person {int(batch['person_index'][i])})") from e
                log.warning("skipped: %s", e)
                images[name] = None
        image = images[name]
        if image is None:
            ok[i] = False
            continue
        view = box_view(image, boxes[i], plan.codec.input_size)
        crops[i], matrix[i] = view.image, view.matrix
    out = {k: np.asarray(batch[k]) for k in PERSON_COLUMNS}
    out["bbox"] = boxes.astype(np.float32)
    return {**out, "crops": crops, "matrix": matrix, "ok": ok}


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class PoolLabelWriter:
    """The labeling stage: teachers + PCM on a batch of views, written to the store.

    Loads the teachers once (on ``plan.device``, chosen here, on the worker). Calling it with the
    output of :func:`read_views` writes the batch's rows of readable persons as one store file
    and returns a one-row summary: ``key`` (the file's key), ``rows``, ``exported`` (persons with
    at least ``min_joints`` kept joints), ``kept_joints``, ``skipped`` (unreadable images).
    """

    def __init__(self, plan: LabelPlan):
        torch.set_num_threads(max(1, int(plan.threads)))
        self.plan = plan
        self.device = _pick_device(plan.device)
        self.labeler = TeacherLabeler(plan.ckpts, plan.options, self.device)
        self.store = plan.open_store()
        log.info("export labeler on %s", self.device)

    def __call__(self, views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.asarray(views["ok"], bool)
        summary = {
            "key": [-1],
            "rows": [0],
            "exported": [0],
            "kept_joints": [0],
            "skipped": [int((~ok).sum())],
        }
        if ok.any():
            sel = np.flatnonzero(ok)
            batch = {
                "images": to_tensor(np.asarray(views["crops"])[sel]),
                "matrix": torch.from_numpy(np.asarray(views["matrix"], np.float64)[sel]),
                "image_id": np.asarray(views["image_id"])[sel],
                "index": np.asarray(views["person_index"])[sel],
                "bbox": np.asarray(views["bbox"], np.float32)[sel],
                "image_file": [Path(str(views["image_file"][i])).as_posix() for i in sel],
            }
            rows, raw = self.labeler.label_batch(batch)
            if not self.plan.store_heatmaps:
                rows.heatmaps = None
            key = int(rows.person_index.min())
            if self.plan.truth_dir is not None:
                write_truth_side_file(self.plan.truth_dir, key, rows, raw["mean_AB"])
            self.store.write_batch(self.plan.ckpts.epoch, key, rows)
            kept = (rows.weights > 0).sum(axis=1)
            summary.update(
                key=[key],
                rows=[len(rows)],
                exported=[int((kept >= max(self.plan.options.min_joints, 1)).sum())],
                kept_joints=[int(kept.sum())],
            )
        return {k: np.asarray(v, dtype=np.int64) for k, v in summary.items()}


def write_truth_side_file(truth_dir: str, key: int, rows: PseudoLabelRows, mean_ab: np.ndarray) -> None:
    """``truth_dir/part-KEY.parquet``: the teachers' mean (A_t + B_t) / 2 decoded, (N, K*3) image
    space, by ``person_index`` (the store holds A_t, B_t and PCM's label)."""
    n = len(rows)
    table = pa.table(
        {
            "person_index": pa.array(rows.person_index, pa.int64()),
            "kpts_mean_ab": pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray(mean_ab, np.float32).reshape(-1)), mean_ab[0].size if n else 1
            ),
        }
    )
    with open_for_writing(join_location(truth_dir, f"part-{key:010d}.parquet")) as f:
        pq.write_table(table, f)


def label_locally(plan: LabelPlan, done: np.ndarray, batch_size: int) -> Iterator[dict[str, int]]:
    """Both stages in this process over the persons not in ``done`` (sorted person indices):
    one summary per batch (see :class:`PoolLabelWriter`)."""
    writer = PoolLabelWriter(plan)
    for record in iter_table(plan.persons, batch_size, columns=PERSON_COLUMNS):
        batch = record.to_pydict()
        index = np.asarray(batch["person_index"], np.int64)
        keep = ~np.isin(index, done)
        if not keep.any():
            continue
        batch = {
            k: np.asarray(v, dtype=object if k == "image_file" else None)[keep] for k, v in batch.items()
        }
        out = writer(read_views(batch, plan))
        yield {k: int(v[0]) for k, v in out.items()}
