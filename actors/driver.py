"""The Ray driver: the same Trainer as in-process, over network actors and a pseudo-label actor.

``resources.data_parallel`` = 1: one actor per network and one pseudo-label actor.
``resources.data_parallel`` = N > 1: every role is a group of N ranks (DDP) and there are N
pseudo-label workers, one per lane (:mod:`actors.role_group`). Supervised runs go to Ray Train
(:mod:`actors.ray_train_supervised`).
"""

from __future__ import annotations

import dataclasses
import logging

import ray

from actors.cluster import init_ray
from actors.data_stream import batches_for, load_stream_run_data
from actors.executor import RayExecutor, wait_alive
from actors.network_actor import NetworkActor
from actors.placement import create_lane_placement_group, create_placement_group, derive_resources, in_bundle
from actors.pseudo_label_actor import PseudoLabelActor
from actors.role_group import GroupExecutor, RoleGroup, lane_batches, rendezvous
from pipeline.config import Config
from pipeline.run_setup import RunData, network_specs, pseudo_label_config
from pipeline.trainer import Trainer

log = logging.getLogger(__name__)


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
    # restartable too: it holds nothing a restart loses (its labels are in the store, which the
    # trainer's recovery trims back to the restored checkpoint)
    pseudo = PseudoLabelActor.options(
        num_cpus=res.num_cpus,
        max_restarts=cfg.resources.max_actor_restarts,
        max_task_retries=0,
        scheduling_strategy=in_bundle(pg, len(specs)),
    ).remote(pseudo_label_config(cfg, data.skeleton), res.torch_threads)
    ray.get([h.ping.remote() for h in [*nets.values(), pseudo]])
    return nets, pseudo, pg


def build_ray_trainer(cfg: Config, data: RunData | None = None, batches=None) -> tuple[Trainer, object]:
    """A Trainer whose networks are Ray actors (call ``ray.util.remove_placement_group(pg)`` after)."""
    init_ray(cfg.resources.address)
    data = data or load_stream_run_data(cfg)  # the pool from its Parquet pack when configured
    nets, pseudo, pg = launch_actors(cfg, data)
    return Trainer(cfg, data, nets, pseudo, RayExecutor(), batches=batches), pg


class Lanes:
    """The actors of a data-parallel run: ``groups[role]`` (N ranks each) and ``pseudo`` (N
    pseudo-label workers, which also feed their lanes), lane r in bundle r of one placement group.
    """

    def __init__(self, cfg: Config, data: RunData):
        self.cfg, self.data = cfg, data
        self.lanes = cfg.resources.data_parallel
        self.specs = network_specs(cfg, data.skeleton.num_joints)
        self.res = derive_resources(cfg.resources, len(self.specs), ray.cluster_resources(), self.lanes)
        log.info("%d lanes; per actor: %s", self.lanes, self.res)
        self.pg = create_lane_placement_group(
            self.res, len(self.specs), self.lanes, cfg.resources.placement_strategy
        )
        self.groups = {role: RoleGroup(role, []) for role in self.specs}
        self.pseudo = RoleGroup("pseudo", [])
        self.launch()

    def actors(self) -> list:
        return [h for g in [*self.groups.values(), self.pseudo] for h in g.handles]

    def launch(self) -> None:
        """Start every rank and lane worker, then form each role's process group."""
        res, cfg = self.res, self.cfg
        pseudo_cfg = pseudo_label_config(cfg, self.data.skeleton)
        for lane in range(self.lanes):
            bundle = in_bundle(self.pg, lane)
            for role, spec in self.specs.items():
                spec = dataclasses.replace(spec, device=res.device, num_threads=res.torch_threads)
                self.groups[role].handles.append(
                    NetworkActor.options(
                        num_cpus=res.num_cpus,
                        num_gpus=res.num_gpus,
                        max_restarts=0,  # a lost rank restarts its whole group (relaunch)
                        scheduling_strategy=bundle,
                    ).remote(spec)
                )
            worker = PseudoLabelActor.options(num_cpus=res.num_cpus, scheduling_strategy=bundle)
            lane_cfg = dataclasses.replace(pseudo_cfg, lane=lane)
            self.pseudo.handles.append(worker.remote(lane_cfg, res.torch_threads))
        wait_alive(self.actors())
        first = next(iter(self.groups.values()))
        self.nodes = ray.get([h.node_id.remote() for h in first.handles])
        for lane, node in enumerate(self.nodes):
            log.info("lane %d on node %s", lane, node)
        rendezvous(
            self.groups, timeout_s=cfg.resources.collective_timeout_s, sync_batchnorm=cfg.resources.sync_bn
        )

    def kill(self) -> None:
        for h in self.actors():
            ray.kill(h, no_restart=True)
        for g in [*self.groups.values(), self.pseudo]:
            g.handles.clear()

    def relaunch(self) -> None:
        """After a lost rank: new processes for every lane (the trainer then restores them all)."""
        log.warning("relaunching all %d lanes", self.lanes)
        self.kill()
        self.launch()

    def close(self) -> None:
        self.kill()
        ray.util.remove_placement_group(self.pg)


def train_lanes(cfg: Config, resume: bool = False) -> dict[str, float]:
    """Train a semi-supervised method with ``resources.data_parallel`` lanes."""
    init_ray(cfg.resources.address)
    data = load_stream_run_data(cfg)
    lanes = Lanes(cfg, data)
    try:
        options = {
            "loader": cfg.data.loader,
            "prefetch_batches": cfg.data.prefetch_batches,
            "num_workers": cfg.data.num_workers or 1,
        }
        trainer = Trainer(
            cfg,
            data,
            lanes.groups,
            lanes.pseudo,
            GroupExecutor(lanes.actors, lanes.relaunch),
            batches=lane_batches(lanes.pseudo, options),
        )
        if resume:
            trainer.resume()
        return trainer.train()
    finally:
        lanes.close()


def train_ray(cfg: Config, resume: bool = False) -> dict[str, float]:
    """Train ``cfg`` on Ray; returns the final evaluation.

    Supervised: Ray Train (``TorchTrainer``, ``resources.data_parallel`` workers). Dual / SSPCM:
    one actor per network, or ``resources.data_parallel`` lanes of them.
    """
    if cfg.method.name == "supervised":
        from actors.ray_train_supervised import train_supervised

        return train_supervised(cfg, resume=resume)
    if cfg.resources.data_parallel > 1:
        return train_lanes(cfg, resume=resume)
    trainer, pg = build_ray_trainer(cfg, batches=batches_for(cfg))
    try:
        if resume:
            trainer.resume()
        return trainer.train()
    finally:
        for h in [*trainer.nets.values(), trainer.pseudo]:
            ray.kill(h)
        ray.util.remove_placement_group(pg)
