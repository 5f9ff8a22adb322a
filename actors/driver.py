"""The Ray driver: the same Trainer as in-process, over network actors and a pseudo-label actor."""

from __future__ import annotations

import dataclasses
import logging
import os

import ray

from actors.data_stream import batches_for, load_stream_run_data
from actors.executor import RayExecutor
from actors.network_actor import NetworkActor
from actors.placement import create_placement_group, derive_resources, in_bundle
from actors.pseudo_label_actor import PseudoLabelActor
from pipeline.config import Config
from pipeline.run_setup import RunData, network_specs, pseudo_label_config
from pipeline.trainer import Trainer

log = logging.getLogger(__name__)


def init_ray(cfg: Config) -> None:
    """Attach to ``resources.address`` (or the job's cluster), else start a local instance."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = cfg.resources.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(include_dashboard=False)
    log.info("Ray cluster resources: %s", ray.cluster_resources())


def launch_actors(cfg: Config, data: RunData) -> tuple[dict, object, object]:
    """Create the placement group, one network actor per role and the pseudo-label actor."""
    specs = network_specs(cfg, data.skeleton.num_joints)
    res = derive_resources(cfg.resources, len(specs), ray.cluster_resources())
    log.info("per actor: %s", res)
    pg = create_placement_group(res, len(specs))
    nets = {}
    for i, (role, spec) in enumerate(specs.items()):
        spec = dataclasses.replace(spec, device=res.device, num_threads=res.torch_threads)
        nets[role] = NetworkActor.options(
            name=None,
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus,
            max_restarts=cfg.resources.max_actor_restarts,
            max_task_retries=0,
            scheduling_strategy=in_bundle(pg, i),
        ).remote(spec)
    pseudo = PseudoLabelActor.options(
        num_cpus=res.num_cpus, scheduling_strategy=in_bundle(pg, len(specs))
    ).remote(pseudo_label_config(cfg, data.skeleton), res.torch_threads)
    ray.get([h.ping.remote() for h in [*nets.values(), pseudo]])
    return nets, pseudo, pg


def build_ray_trainer(cfg: Config, data: RunData | None = None, batches=None) -> tuple[Trainer, object]:
    """A Trainer whose networks are Ray actors (call ``ray.util.remove_placement_group(pg)`` after)."""
    init_ray(cfg)
    data = data or load_stream_run_data(cfg)  # the pool from its Parquet pack when configured
    nets, pseudo, pg = launch_actors(cfg, data)
    return Trainer(cfg, data, nets, pseudo, RayExecutor(), batches=batches), pg


def train_ray(cfg: Config, resume: bool = False) -> dict[str, float]:
    """Train ``cfg`` with one actor per network; returns the final evaluation."""
    trainer, pg = build_ray_trainer(cfg, batches=batches_for(cfg))
    try:
        if resume:
            trainer.resume()
        return trainer.train()
    finally:
        for h in [*trainer.nets.values(), trainer.pseudo]:
            ray.kill(h)
        ray.util.remove_placement_group(pg)
