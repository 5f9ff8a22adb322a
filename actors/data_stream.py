"""Ray Data streams of training batches: decode, crop and build the views on CPU workers.

The Trainer asks for ``batches(kind, dataset, order)``: one collated batch per step, batch ``i``
holding the persons ``order[i]``. Here each step becomes one row of a Ray Data dataset; a pool
of CPU workers turns each row into its collated batch (a few consecutive steps per task, as the
object store allows: a task costs ~20 ms beyond its work) with the SAME dataset classes the
in-process loader uses (``LabeledDataset`` / ``UnlabeledDataset``, whose randomness is keyed by
(seed, epoch, index)), so the stream yields exactly the batches of the local DataLoader, in order.
Images come from their files, or, for a pool packed by ``jobs.pack_pool``
(``data.unlabeled_parquet``, a local path or a pyarrow URI such as ``s3://...``), from the
Parquet pack: each worker reads the one row it needs.

What each worker receives (once per stream, pickled with the dataset): for a packed pool only
the pack's location (``PackedPool`` pickles as its location and manifest; the worker reads the
columns of ``persons.parquet`` itself, once) plus, with ``data.pool_includes_labeled``, the
labeled persons as a list; for a pool of image files (``data.unlabeled_ann``) and for the labeled
stream, the dataset's whole person list. Besides that, only the steps' index lists and the
finished batches pass through the object store, never the source images; the streaming
executor keeps a bounded number of batches in flight (``store_fraction`` of the store), so a
pool far larger than memory (or than the object store) streams; the driver iterates with
``prefetch_batches``. The workers start once per stream, i.e. once per epoch and kind (~4 s on
2 cores).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import ray
import torch

from pipeline.config import Config
from pipeline.data.coco import load_coco_persons
from pipeline.data.image_checks import BadImageError
from pipeline.data.images import ImageError
from pipeline.data.pool_packs import ChainedPersons, PackError, read_pool_pack, with_pack_images
from pipeline.data.topdown import LabeledDataset
from pipeline.run_setup import RunData, load_run_data

log = logging.getLogger(__name__)

STRING_FIELDS = ("image_file",)
SEPARATOR = "\x1f"  # joins a batch's file names into one string cell
WORKER_CPUS = 0.1  # fractional: the workers always fit beside the network actors (no deadlock)
# Share of the object store one stream may fill (Ray Data's default is 0.5 per executor): the
# trainer runs two streams at once, and the schedule's own batches and heatmaps need room too.
STORE_FRACTION = 0.2
# Aim of one task's output: a Ray Data task costs ~20 ms beyond its work (measured on 2 cores),
# so a task builds several steps; capped so that 4 blocks fit in the stream's store budget.
BLOCK_BYTES = 64 * 1024**2
MAX_STEPS_PER_TASK = 8
# Errors of the input itself, raised by a worker as they are (see ``_rows``).
BAD_INPUT_ERRORS = (ImageError, BadImageError, PackError)


class _BuildBatch:
    """map_batches worker: S step rows ``{"indices": (S, B)}`` -> their S collated batches.

    Output: every tensor of the dataset's collated batch with a leading step axis (e.g.
    ``images`` (S, B, 3, H, W) float32, ``matrix`` (S, B, 2, 3) float64, ``flipped`` (S, B)
    bool); string fields as one joined string per step.
    """

    def __init__(self, dataset: Any):
        # ``dataset`` arrives unpickled once per worker: a ``PackedPool`` among its persons has
        # just read its columns from the pack's persons.parquet (they do not travel).
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        self.dataset = with_pack_images(dataset)

    def _build(self, indices: np.ndarray) -> dict:
        batch = torch.utils.data.default_collate([self.dataset[int(i)] for i in indices])
        return {
            k: SEPARATOR.join(v) if k in STRING_FIELDS else torch.as_tensor(v).numpy()
            for k, v in batch.items()
        }

    def __call__(self, rows: dict) -> dict:
        built = [self._build(indices) for indices in rows["indices"]]
        return {
            k: np.array([b[k] for b in built], dtype=object)
            if k in STRING_FIELDS
            else np.stack([b[k] for b in built])
            for k in built[0]
        }


def steps_per_task(dataset: Any, batch_size: int, block_bytes: int) -> int:
    """How many consecutive steps one map task builds: as many batches as fit in ``block_bytes``
    (at least 1, at most ``MAX_STEPS_PER_TASK``)."""
    w, h = dataset.codec.input_size
    per_person = 3 * w * h * 4  # the float32 image; labeled batches add their float32 targets
    if isinstance(dataset, LabeledDataset):
        hw, hh = dataset.codec.heatmap_size
        per_person += dataset.skeleton.num_joints * hw * hh * 4
    return int(max(1, min(MAX_STEPS_PER_TASK, block_bytes // max(1, per_person * batch_size))))


def _to_torch(block: dict, row: int) -> dict:
    """Row ``row`` of a streamed block -> the collated batch (copied out of the read-only store)."""
    out = {}
    for key, value in block.items():
        if key in STRING_FIELDS:
            out[key] = str(value[row]).split(SEPARATOR)
        else:
            out[key] = torch.from_numpy(np.array(value[row], copy=True))
    return out


def _rows(blocks: Iterator[dict]) -> Iterator[dict]:
    """The collated batches of a stream of blocks, in order (a block holds consecutive steps).

    Bad input met by a worker (an unreadable image or pack file) is raised here as the worker
    raised it, its message naming the file, as the in-process loader would raise it."""
    try:
        for block in blocks:
            for row in range(len(next(iter(block.values())))):
                yield _to_torch(block, row)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, BAD_INPUT_ERRORS):
            raise e.cause from None
        raise


def ray_data_batches(
    kind: str,
    dataset: Any,
    order: list[list[int]],
    *,
    prefetch_batches: int = 2,
    num_cpus: float = WORKER_CPUS,
    num_workers: int = 2,
    store_fraction: float = STORE_FRACTION,
) -> Iterator[dict]:
    """Stream the batches of ``order`` (one per step) built by Ray Data workers.

    Args:
        kind: "labeled" or "unlabeled" (for logging).
        dataset: a ``LabeledDataset`` / ``UnlabeledDataset`` with its epoch already set; its
            persons may be ``pipeline.data.pool_packs.PackedPerson`` (image read from the pack).
        order: person indices of each step's batch (equal sizes).
        prefetch_batches: blocks (of ``steps_per_task`` batches each) the driver keeps ready
            ahead of the trainer.
        num_cpus: CPU share of each worker (fractional: workers fit beside the network actors).
        num_workers: worker processes building batches (all started at once; an autoscaling
            pool that adds a worker mid-stream measured slower on 2 cores).
        store_fraction: share of the object store this stream's batches in flight may use.

    Yields:
        batch ``i`` = the local DataLoader's collated batch of ``order[i]``: the same tensors
        (same dtypes: float32 images, float64 matrices, bool ``flipped``, int64 ids) and
        ``image_file`` as a list of str.
    """
    if not order:
        return iter(())
    # A map task builds `per_task` consecutive steps: its output block is at most ~block_bytes.
    store_bytes = ray.cluster_resources().get("object_store_memory", 0.0)
    block_bytes = int(min(BLOCK_BYTES, store_fraction * store_bytes / 4))
    per_task = steps_per_task(dataset, len(order[0]), block_bytes)
    steps = ray.data.from_items(
        [{"indices": np.asarray(b, dtype=np.int64)} for b in order],
        override_num_blocks=math.ceil(len(order) / per_task),
    )
    built = steps.map_batches(
        _BuildBatch,
        fn_constructor_args=(dataset,),
        batch_size=per_task,
        batch_format="numpy",
        # min_size 1: the stream runs even if the cluster can place only one worker.
        compute=ray.data.ActorPoolStrategy(min_size=1, initial_size=num_workers, max_size=num_workers),
        num_cpus=num_cpus,
    )
    built.context.execution_options.preserve_order = True  # batch i is step i
    built.context.override_object_store_memory_limit_fraction = store_fraction
    built.context.enable_progress_bars = False  # the trainer has its own
    # a worker's error reaches the trainer as itself (e.g. the ImageError naming a truncated
    # image), not as Ray Data's "UDF failed to process a data block"
    built.context.raise_original_map_exception = True
    log.debug("Ray Data stream of %d %s batches, %d per task", len(order), kind, per_task)
    # batch_size=None: whole blocks as built (no re-batching copies), split into steps here.
    return _rows(built.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=prefetch_batches))


def batches_for(cfg: Config) -> Callable[[str, Any, list[list[int]]], Iterator[dict]] | None:
    """The Trainer's ``batches`` callable for ``cfg.data.loader`` (None = the in-process loader).

    Each of the two streams (labeled, unlabeled) gets ``data.num_workers`` workers (2 when 0).
    """
    if cfg.data.loader != "ray_data":
        return None
    workers = cfg.data.num_workers or 2
    return lambda kind, dataset, order: ray_data_batches(
        kind, dataset, order, prefetch_batches=cfg.data.prefetch_batches, num_workers=workers
    )


def load_stream_run_data(cfg: Config) -> RunData:
    """``load_run_data``, with the unlabeled pool read from the pack ``data.unlabeled_parquet``
    (a local path or a pyarrow URI) when set, plus the whole labeled set when
    ``data.pool_includes_labeled``: a ``PackedPool``, or a ``ChainedPersons`` of the pack and the
    labeled persons (the pack's persons stay columns, never a list)."""
    d = cfg.data
    if d.unlabeled_parquet is None:
        return load_run_data(cfg)
    # Labeled and validation sets as usual; the pool is this pack instead of image files.
    supervised = dataclasses.replace(cfg.method, name="supervised")
    data = load_run_data(dataclasses.replace(cfg, method=supervised))
    if cfg.method.name == "supervised":
        return data
    pool: Any = read_pool_pack(d.unlabeled_parquet)
    if d.pool_includes_labeled:
        pool = ChainedPersons(
            pool, load_coco_persons(d.labeled_ann, d.labeled_images, skeleton=data.skeleton)
        )
    log.info("unlabeled: %d persons (pack %s)", len(pool), d.unlabeled_parquet)
    return dataclasses.replace(data, unlabeled=pool)
