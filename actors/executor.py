"""The Ray executor: the schedule's calls become actor method calls on object refs."""

from __future__ import annotations

import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError

log = logging.getLogger(__name__)


class RayExecutor:
    """``put`` = ``ray.put`` (a batch is shared once), ``submit`` = ``.remote``, ``gather`` = ``ray.get``."""

    recoverable_errors: tuple[type[BaseException], ...] = (RayActorError,)

    def put(self, value: Any) -> Any:
        return ray.put(value)

    def submit(self, handle: Any, method: str, *args: Any, num_returns: int = 1) -> Any:
        remote = getattr(handle, method)
        if num_returns != 1:
            remote = remote.options(num_returns=num_returns)
        return remote.remote(*args)

    def gather(self, futures: Any) -> Any:
        return ray.get(futures)

    def wait_restarted(self, handles: list, timeout_s: float = 300.0) -> None:
        """Block until every actor answers again (Ray restarts dead ones up to max_restarts)."""
        wait_alive(handles, timeout_s, "a network actor did not come back after a failure")


def wait_alive(handles: list, timeout_s: float = 300.0, error: str = "an actor did not start") -> None:
    """Block until every actor answers ``ping``; RuntimeError(``error``) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    for h in handles:
        while True:
            try:
                ray.get(h.ping.remote(), timeout=30)
                break
            except (RayActorError, ray.exceptions.GetTimeoutError) as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(error) from e
                time.sleep(0.5)
