"""The pseudo-label actor: PCM + SSCO + hard views (``PseudoLabeler``, pipeline/method) on CPU.

In a data-parallel run (``resources.data_parallel`` > 1) there is one per lane, and it is also
the lane's data feeder: it builds its lane's shard of every step's batch (:meth:`open_stream`,
:meth:`next_batch`), so batches go from the lane's node to the lane's networks without passing
through the driver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import ray
import torch

from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler


class PseudoLabelHost(PseudoLabeler):
    def __init__(self, cfg: PseudoLabelConfig, num_threads: int = 1):
        torch.set_num_threads(max(1, num_threads))
        super().__init__(cfg)
        self._streams: dict[str, Iterator[dict]] = {}

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return "pseudo"

    def open_stream(self, kind: str, dataset: Any, order: list[list[int]], options: dict) -> int:
        """Start this lane's stream of ``kind`` ("labeled" / "unlabeled"): batch i = the persons
        ``order[i]`` of ``dataset``, built by a Ray Data stream (``options["loader"] ==
        "ray_data"``) or a DataLoader in this process. Returns the number of batches."""
        if options.get("loader") == "ray_data":
            from actors.data_stream import ray_data_batches

            self._streams[kind] = ray_data_batches(
                kind,
                dataset,
                order,
                prefetch_batches=options.get("prefetch_batches", 2),
                num_workers=options.get("num_workers", 1),
            )
        else:
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=order, num_workers=0)
            self._streams[kind] = iter(loader)
        return len(order)

    def next_batch(self, kind: str) -> dict:
        """The next collated batch of this lane's ``kind`` stream."""
        try:
            return next(self._streams[kind])
        except KeyError:
            raise RuntimeError(f"no {kind} stream is open on this lane (call open_stream first)") from None


PseudoLabelActor = ray.remote(PseudoLabelHost)
