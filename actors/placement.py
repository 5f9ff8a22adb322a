"""Placement: one bundle per network (a GPU, or a share of one) plus one for the pseudo labeler;
with ``resources.data_parallel`` = N > 1, one bundle per lane (its network ranks and its
pseudo-label worker, so a lane stays on one node).

All fractions are derived from the config's ``resources`` section (``nets_per_gpu``:
networks sharing one GPU; ``data_parallel``) and, on CPU-only machines, the cluster's CPU count.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from pipeline.config import ResourcesConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorResources:
    """Per-actor resources: ``num_gpus`` per network (0 on CPU), CPUs per actor, torch threads."""

    num_gpus: float
    num_cpus: float
    torch_threads: int

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"


def derive_resources(
    cfg: ResourcesConfig, num_nets: int, cluster: dict[str, float], lanes: int = 1
) -> ActorResources:
    """Resources of each network actor (the pseudo-label actor gets the same CPUs, no GPU).

    Args:
        cfg: the ``resources`` section.
        num_nets: networks of the method (1, 2 or 3).
        cluster: ``ray.cluster_resources()``.
        lanes: data-parallel lanes (``resources.data_parallel``): every lane has ``num_nets``
            network ranks and a pseudo-label worker.

    On CPU the cluster's CPUs are shared by the networks, the pseudo labeler and one share for
    the data pipeline, so that everything fits on a 2-core laptop (three ``num_cpus=1`` actors
    on 2 CPUs would leave one pending forever).
    """
    gpus_available = float(cluster.get("GPU", 0.0))
    gpus = gpus_available if cfg.num_gpus is None else float(cfg.num_gpus)
    if gpus > gpus_available:
        raise ValueError(
            f"resources.num_gpus={cfg.num_gpus} but the Ray cluster has {gpus_available:g} GPU(s)"
        )
    cpus = float(cluster.get("CPU", 1.0))
    if gpus > 0:
        if cfg.nets_per_gpu < 1:
            raise ValueError("resources.nets_per_gpu must be >= 1")
        needed = math.ceil(lanes * num_nets / cfg.nets_per_gpu)
        if needed > gpus:
            raise ValueError(
                f"{lanes} x {num_nets} networks at nets_per_gpu={cfg.nets_per_gpu} need {needed} GPU(s); "
                f"{gpus:g} available (raise resources.nets_per_gpu to share a GPU, or lower "
                "resources.data_parallel)"
            )
        per_cpu = cfg.cpus_per_actor or max(0.25, min(4.0, (cpus - 1) / (lanes * (num_nets + 1))))
        return ActorResources(1.0 / cfg.nets_per_gpu, per_cpu, max(1, int(per_cpu)))
    per_cpu = cfg.cpus_per_actor or cpus / (lanes * (num_nets + 1) + 1)
    return ActorResources(0.0, per_cpu, max(1, int(per_cpu)))


def create_placement_group(res: ActorResources, num_nets: int, timeout_s: float = 120.0) -> PlacementGroup:
    """Reserve bundles for the networks and the pseudo labeler (PACK); clear error if it cannot fit."""
    bundles = [
        {"CPU": res.num_cpus, **({"GPU": res.num_gpus} if res.num_gpus else {})} for _ in range(num_nets)
    ]
    bundles.append({"CPU": res.num_cpus})
    return _reserve(bundles, "PACK", timeout_s, f"{bundles}", "lower resources.cpus_per_actor or add nodes")


def _reserve(bundles: list[dict], strategy: str, timeout_s: float, what: str, advice: str) -> PlacementGroup:
    """A ready placement group of ``bundles``, or a RuntimeError naming ``what`` and the cluster."""
    pg = placement_group(bundles, strategy=strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        ray.util.remove_placement_group(pg)
        raise RuntimeError(
            f"the Ray cluster cannot place {what} ({strategy}) within {timeout_s:.0f} s "
            f"(cluster: {ray.cluster_resources()}); {advice}"
        )
    log.info("placement group ready: %s (%s)", what, strategy)
    return pg


def create_lane_placement_group(
    res: ActorResources, num_nets: int, lanes: int, strategy: str = "PACK", timeout_s: float = 120.0
) -> PlacementGroup:
    """One bundle per lane (its ``num_nets`` network ranks and its pseudo-label worker, so a
    lane is always on one node); ``strategy`` places the lanes (PACK, SPREAD, STRICT_PACK,
    STRICT_SPREAD). Clear error if the cluster cannot place them."""
    bundle = {"CPU": res.num_cpus * (num_nets + 1)}
    if res.num_gpus:
        bundle["GPU"] = res.num_gpus * num_nets
    bundles = [dict(bundle) for _ in range(lanes)]
    advice = "lower resources.data_parallel or resources.cpus_per_actor, or add nodes"
    return _reserve(bundles, strategy, timeout_s, f"{lanes} lane(s) of {bundle}", advice)


def in_bundle(pg: PlacementGroup, index: int) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=index)
