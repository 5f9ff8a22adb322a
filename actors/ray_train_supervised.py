"""Supervised training on Ray Train: the baseline, or any model on an exported pseudo-label set.

``train_supervised(cfg)`` runs :class:`pipeline.trainer.Trainer` in every worker of a
``ray.train.torch.TorchTrainer`` with ``ScalingConfig(num_workers=resources.data_parallel)``.
Ray Train forms the process group (gloo on CPU, NCCL on GPU); each worker wraps its network in
DistributedDataParallel (SyncBatchNorm per ``resources.sync_batchnorm``) and trains on its shard
of every batch, so N workers with a global batch B equal one process with B. Rank 0 writes the
usual run directory (config, metrics, checkpoints, evaluation) and hands each epoch's
checkpoint to Ray Train (``ray.train.report``), which keeps a copy under
``RUN/ray_train/``. A worker that dies restarts the worker group
(``FailureConfig(max_failures=resources.max_actor_restarts)``), which resumes from the latest
checkpoint of the run directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import ray
import torch

from actors.cluster import init_ray
from pipeline.config import Config
from pipeline.method.schedule import LocalExecutor
from pipeline.models.network import Network
from pipeline.run_setup import load_run_data, network_specs
from pipeline.trainer import Trainer

log = logging.getLogger(__name__)


def _report(metrics: dict, checkpoint: str | None) -> None:
    """Ray Train's report from every worker; rank 0 attaches a local checkpoint directory."""
    from ray.train import Checkpoint

    ckpt = Checkpoint.from_directory(checkpoint) if checkpoint and os.path.isdir(checkpoint) else None
    ray.train.report(metrics, checkpoint=ckpt)


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: the Trainer over this rank's shard of every batch."""
    cfg: Config = config["cfg"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = config["threads"]
    torch.set_num_threads(threads)
    device = str(ray.train.torch.get_device()) if config["use_gpu"] else "cpu"
    data = load_run_data(cfg)
    spec = network_specs(cfg, data.skeleton.num_joints)["student"]
    net = Network(dataclasses.replace(spec, device=device, num_threads=threads))
    if world > 1:
        net.use_process_group(cfg.resources.sync_bn)
    trainer = Trainer(
        cfg, data, {"student": net}, None, LocalExecutor(), rank=rank, world_size=world, report=_report
    )
    # After a worker failure Ray Train starts the loop again: continue from the run's checkpoint.
    if config["resume"] or ray.train.get_checkpoint() is not None:
        trainer.resume()
    trainer.train()


def scaling(cfg: Config) -> tuple[int, bool, float]:
    """(workers, use_gpu, CPUs per worker) for the cluster Ray is attached to."""
    cluster = ray.cluster_resources()
    n = cfg.resources.data_parallel
    gpus = cluster.get("GPU", 0.0) if cfg.resources.num_gpus is None else float(cfg.resources.num_gpus)
    use_gpu = gpus > 0
    if use_gpu and n > gpus:
        raise ValueError(f"resources.data_parallel={n} workers need {n} GPU(s); {gpus:g} available")
    cpus = cfg.resources.cpus_per_actor or max(0.1, min(4.0, float(cluster.get("CPU", 1.0)) / (n + 1)))
    return n, use_gpu, cpus


def train_supervised(cfg: Config, resume: bool = False) -> dict[str, float]:
    """Train ``cfg`` (method ``supervised``) with Ray Train; returns rank 0's final evaluation."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    init_ray(cfg.resources.address)
    n, use_gpu, cpus = scaling(cfg)
    run_dir = Path(cfg.train.out_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg, "resume": resume, "use_gpu": use_gpu, "threads": max(1, int(cpus))},
        torch_config=TorchConfig(
            backend="nccl" if use_gpu else "gloo", timeout_s=int(cfg.resources.collective_timeout_s)
        ),
        scaling_config=ScalingConfig(num_workers=n, use_gpu=use_gpu, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(
            name="ray_train",
            storage_path=str(run_dir),
            failure_config=FailureConfig(max_failures=cfg.resources.max_actor_restarts),
        ),
    )
    log.info("Ray Train: %d worker(s), %s, %.2f CPU each", n, "GPU" if use_gpu else "CPU", cpus)
    result = trainer.fit()
    return {k: float(v) for k, v in result.metrics.items() if k.startswith("eval/")}
