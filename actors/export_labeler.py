"""The export at scale: Ray Data batch inference over the pool's persons table.

:func:`label_on_ray` is the labeling function of
:func:`pipeline.export.exporter.export_pseudo_labels` on Ray::

    read_parquet(OUT/pool/persons.parquet)         the pool, columnar, streamed in blocks
      -> map_batches(leave out written persons)    (a resumed export)
      -> map_batches(read_views)                   tasks: decode + crop (CPU)
      -> map_batches(PoolLabelWriter)              an actor pool: teachers + PCM, writes the store
      -> one summary row per batch                 the only thing the driver receives

Each labeling actor loads the teachers once and picks its device itself (a GPU where it has one),
so a CPU head running ``ray job submit``'s driver never runs a teacher. ``workers`` sets the actor
pool: a fixed size, or ``(min, max)`` for Ray Data to scale between. With GPUs in the cluster each
actor asks for ``gpus_per_worker`` (default 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import ray

from actors.cluster import init_ray
from pipeline.export.labeling import PERSON_COLUMNS, LabelPlan, PoolLabelWriter, read_views
from pipeline.export.pool_table import PoolSource, count_rows, write_pool_tables

log = logging.getLogger(__name__)

MAX_BLOCKS = 2000


def _leave_out(batch: dict[str, np.ndarray], done: np.ndarray) -> dict[str, np.ndarray]:
    keep = ~np.isin(np.asarray(batch["person_index"]), done)
    return {k: np.asarray(v)[keep] for k, v in batch.items()}


def worker_resources(workers: tuple[int, int], gpus_per_worker: float | None) -> dict[str, float]:
    """Ray resources of one labeling actor: a GPU (or ``gpus_per_worker``) each where the cluster
    has GPUs; otherwise a share of the CPUs that leaves half of them to reading the pool and
    decoding images (Ray Data's file listing alone asks for a whole CPU)."""
    gpus = ray.cluster_resources().get("GPU", 0)
    cpus = ray.cluster_resources().get("CPU", 1)
    if gpus > 0 and gpus_per_worker != 0:
        return {"num_gpus": gpus_per_worker or 1.0, "num_cpus": 1.0}
    share = max(0.1, min(1.0, 0.5 * cpus / max(workers[1], 1)))
    return {"num_gpus": 0, "num_cpus": round(share, 2)}


def label_on_ray(
    plan: LabelPlan,
    done: np.ndarray,
    batch_size: int,
    *,
    workers: tuple[int, int] = (1, 1),
    gpus_per_worker: float | None = None,
) -> Iterator[dict[str, int]]:
    """Label the persons not in ``done`` (sorted indices) on Ray Data workers; yields one summary
    per batch (see :class:`pipeline.export.labeling.PoolLabelWriter`) as they finish."""
    init_ray(log_to_driver=False)
    remaining = count_rows(plan.persons) - len(done)
    if remaining <= 0:
        return
    resources = worker_resources(workers, gpus_per_worker)
    threads = max(1, math.floor(resources["num_cpus"])) if resources["num_gpus"] else 1
    plan = replace(plan, threads=threads)
    log.info(
        "labeling %d persons on %s labeling worker(s) (%s each)",
        remaining,
        workers[0] if workers[0] == workers[1] else f"{workers[0]}-{workers[1]}",
        ", ".join(f"{k}={v}" for k, v in resources.items()),
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the export shows its own progress
    # one batch of crops per block: the read stage's output is split into blocks of this size,
    # and each block is one input of a labeling worker (bigger blocks would starve the others)
    w, h = plan.codec.input_size
    ctx.target_max_block_size = batch_size * w * h * 3 + 64 * 1024
    # about one batch per block (at most MAX_BLOCKS), so every labeling worker gets inputs early
    blocks = max(1, min(MAX_BLOCKS, math.ceil(remaining / batch_size)))
    ds = ray.data.read_parquet(str(plan.persons), override_num_blocks=blocks, num_cpus=0.25)
    ds = ds.select_columns(PERSON_COLUMNS)
    if len(done):
        ds = ds.map_batches(_leave_out, fn_kwargs={"done": done}, batch_format="numpy", num_cpus=0.25)
    ds = ds.map_batches(
        read_views, fn_kwargs={"plan": plan}, batch_size=batch_size, batch_format="numpy", num_cpus=0.25
    )
    ds = ds.map_batches(
        PoolLabelWriter,
        fn_constructor_kwargs={"plan": plan},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=workers[0], max_size=workers[1]),
        **resources,
    )
    for summary in ds.iter_rows():
        yield {k: int(v) for k, v in summary.items()}


def prepare_on_ray(source: PoolSource, pool_dir: str) -> dict[str, int]:
    """:func:`pipeline.export.pool_table.write_pool_tables` in a Ray task, so the driver never
    reads the detection file or holds the pool."""
    init_ray(log_to_driver=False)
    return ray.get(ray.remote(num_cpus=0.5)(write_pool_tables).remote(source, pool_dir))
