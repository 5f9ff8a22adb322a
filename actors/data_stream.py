"""Ray Data streams of training batches: decode, crop and build the views on CPU workers.

The Trainer asks for ``batches(kind, dataset, order)``: one collated batch per step, batch ``i``
holding the persons ``order[i]``. Here each step becomes one row of a Ray Data dataset; a pool
of CPU workers turns it into the collated batch with the SAME dataset classes the in-process
loader uses (``LabeledDataset`` / ``UnlabeledDataset``, whose randomness is keyed by (seed,
epoch, index)), so the stream yields exactly the batches of the local DataLoader, in order.
The streaming executor keeps only a bounded number of batches in the object store, so a pool
far larger than memory streams; the driver iterates with ``prefetch_batches``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray
import torch

log = logging.getLogger(__name__)

STRING_FIELDS = ("image_file",)
SEPARATOR = "\x1f"  # joins a batch's file names into one string cell


class _BuildBatch:
    """map_batches worker: a step row ``{"indices": (1, B)}`` -> the collated batch (leading dim 1)."""

    def __init__(self, dataset: Any):
        torch.set_num_threads(1)
        self.dataset = dataset

    def __call__(self, row: dict) -> dict:
        (indices,) = row["indices"]
        batch = torch.utils.data.default_collate([self.dataset[int(i)] for i in indices])
        out = {}
        for key, value in batch.items():
            if key in STRING_FIELDS:
                out[key] = np.array([SEPARATOR.join(value)], dtype=object)
            else:
                out[key] = torch.as_tensor(value).numpy()[None]
        return out


def _to_torch(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key in STRING_FIELDS:
            out[key] = str(value[0]).split(SEPARATOR)
        else:
            out[key] = torch.from_numpy(np.ascontiguousarray(value[0]))
    return out


def ray_data_batches(
    kind: str,
    dataset: Any,
    order: list[list[int]],
    *,
    prefetch_batches: int = 2,
    num_cpus: float = 0.1,
    max_workers: int = 2,
) -> Iterator[dict]:
    """Stream the batches of ``order`` (one per step) built by Ray Data workers.

    Args:
        kind: "labeled" or "unlabeled" (for logging).
        dataset: a ``LabeledDataset`` / ``UnlabeledDataset`` with its epoch already set.
        order: person indices of each step's batch (equal sizes).
        prefetch_batches: batches the driver keeps ready ahead of the trainer.
        num_cpus: CPU share of each worker (fractional: workers fit beside the network actors).
        max_workers: upper bound of the autoscaling worker pool.

    Yields:
        collated batches as torch tensors (``image_file`` as a list of str), in step order.
    """
    if not order:
        return iter(())
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    steps = ray.data.from_items([{"indices": np.asarray(b, dtype=np.int64)} for b in order])
    built = steps.map_batches(
        _BuildBatch,
        fn_constructor_args=(dataset,),
        batch_size=1,
        batch_format="numpy",
        concurrency=(1, max(1, max_workers)),
        num_cpus=num_cpus,
    )
    log.debug("Ray Data stream of %d %s batches", len(order), kind)
    rows = built.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=prefetch_batches)
    return (_to_torch(r) for r in rows)


def batches_for(cfg) -> Any:
    """The Trainer's ``batches`` callable for ``cfg.data.loader`` (None = the in-process loader)."""
    if cfg.data.loader != "ray_data":
        return None
    return lambda kind, dataset, order: ray_data_batches(
        kind, dataset, order, prefetch_batches=cfg.data.prefetch_batches
    )
