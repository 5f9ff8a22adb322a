"""Attaching to a Ray cluster (or starting a local one): shared by the driver and Ray Train."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, *, log_to_driver: bool = True) -> None:
    """Attach to ``address`` (a run's ``resources.address``), else to ``RAY_ADDRESS`` (the job's
    cluster under ``ray job submit``), else start a local instance; nothing if Ray is up."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    else:
        ray.init(include_dashboard=False, log_to_driver=log_to_driver)
    log.info("Ray cluster resources: %s", ray.cluster_resources())
