"""The export at scale: the teachers and PCM in Ray Data workers over a wild pool.

``label_pool_on_ray`` is a row source of :func:`pipeline.export.exporter.export_pseudo_labels`:
the pool positions go through ``map_batches`` into :class:`RayTeacherLabeler` workers (each loads
the teachers once, on CPU or a GPU), which build the box views and return pseudo-label store rows;
the driver gets them back in batches and writes the store and the COCO JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import ray
import torch

from pipeline.export.teachers import BoxViews, ExportOptions, TeacherCheckpoints, TeacherLabeler
from pipeline.store.pseudo_label_store import PseudoLabelRows


class RayTeacherLabeler:
    """Ray Data ``map_batches`` worker: box views + teachers + PCM for a batch of pool positions.

    Takes ``{"id": (n,) pool positions}`` and returns the rows of :class:`PseudoLabelRows` as
    columns (``image_file`` an object array) plus ``raw_<source>`` (n, K, 3) image-space
    keypoints of the uncorrected teachers.
    """

    def __init__(self, persons: list, ckpts: TeacherCheckpoints, options: ExportOptions, device: str):
        torch.set_num_threads(1)
        self.labeler = TeacherLabeler(ckpts, options, device)
        self.views = BoxViews(persons, self.labeler)

    def __call__(self, batch: dict) -> dict:
        items = [self.views[int(i)] for i in batch["id"]]
        collated = torch.utils.data.default_collate(items)
        rows, raw = self.labeler.label_batch(collated)
        out = {k: v for k, v in rows.__dict__.items() if k != "image_file"}
        out["image_file"] = np.asarray(rows.image_file, dtype=object)
        out.update({f"raw_{k}": v for k, v in raw.items()})
        return out


def label_pool_on_ray(
    persons: list, ckpts: TeacherCheckpoints, options: ExportOptions, batch_size: int, device: str
) -> Iterator[tuple[PseudoLabelRows, dict[str, np.ndarray]]]:
    """Label ``persons`` in Ray Data workers (one worker; a GPU each when ``device`` is CUDA):
    (store rows, raw teacher keypoints) per batch, in pool order. Attaches to ``RAY_ADDRESS`` or
    starts a local instance when Ray is not initialised."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False)
    gpus = 1 if device.startswith("cuda") else 0
    ds = ray.data.range(len(persons)).map_batches(
        RayTeacherLabeler,
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
