"""Attaching to a Ray cluster (or starting a local one): shared by the driver and Ray Train."""

from __future__ import annotations

import logging
import os

import ray

from pipeline.config import Config

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
