"""Data-parallel role groups: one network role as N Ray actors, driven by the unchanged schedule.

Lane r holds rank r of every role (A_r, B_r, C_r) and a pseudo-label worker P_r, placed in one
placement-group bundle (one node). A step's batch exists only as N shards, one per lane, built
by P_r itself (:meth:`actors.pseudo_label_actor.PseudoLabelHost.next_batch`); the driver holds
object refs, never the images. :class:`GroupExecutor` runs the schedule's calls on groups:

* ``submit(group, method, *args)`` calls ``method`` on every rank; an argument that is a
  :class:`Sharded` value gives rank r its part r (a shard of the batch, or the future of lane r's
  teacher heatmaps), any other argument goes to every rank. The result is a :class:`Sharded`
  future (a tuple of them for several returns), so lane r's outputs flow to lane r's next call
  without passing through the driver.
* ``gather`` waits for every rank and combines: metric dicts are averaged over the ranks (equal
  shards), tensors are concatenated along the batch axis, anything else is rank 0's value.
* ``state_dict`` and ``get_weights`` go to rank 0 only (DDP keeps the replicas equal).

Ranks of a role average their gradients through DistributedDataParallel (torch.distributed,
gloo on CPU, NCCL on GPU), joined at a ``tcp://`` rendezvous on rank 0's node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

from actors.executor import RayExecutor
from pipeline.trainer import shard_of

log = logging.getLogger(__name__)

RANK0_METHODS = frozenset({"state_dict", "get_weights"})


@dataclass
class Sharded:
    """One value per lane: ``parts[r]`` belongs to lane r (an object ref or a plain value)."""

    parts: list


class RoleGroup:
    """The N actors of one role (``handles[r]`` is rank r), or the N pseudo-label workers."""

    def __init__(self, role: str, handles: list):
        self.role = role
        self.handles = list(handles)

    def __len__(self) -> int:
        return len(self.handles)


def _combine(values: list) -> Any:
    first = values[0]
    if isinstance(first, dict) and all(isinstance(v, (int, float)) for v in first.values()):
        return {k: float(np.mean([v[k] for v in values])) for k in first}
    if torch.is_tensor(first):
        return torch.cat(values, dim=0)
    return first


def _put_shared(value: Any) -> Any:
    """Large arguments sent to every rank are put in the object store once."""
    if isinstance(value, (dict, np.ndarray)) or torch.is_tensor(value):
        return ray.put(value)
    return value


class RankLost(RuntimeError):
    """A rank of a role group died; its peers' calls failed in a collective."""


class GroupExecutor(RayExecutor):
    """The schedule's executor over :class:`RoleGroup` handles (see the module docstring); a
    plain actor handle is called as by :class:`RayExecutor`.

    Args:
        actors: every actor of the run (to tell a dead rank from a failing call).
        relaunch: called after a rank failed (``wait_restarted``): kills and recreates every
            group in place (new processes, a new process group), so that the trainer can
            restore all of them from the latest checkpoint.
    """

    recoverable_errors: tuple[type[BaseException], ...] = (RayActorError, RankLost)

    def __init__(self, actors: Callable[[], list], relaunch: Callable[[], None]):
        self.actors, self.relaunch = actors, relaunch

    def put(self, value: Any) -> Any:
        return value if isinstance(value, Sharded) else super().put(value)

    def submit(self, handle: Any, method: str, *args: Any, num_returns: int = 1) -> Any:
        if not isinstance(handle, RoleGroup):
            return super().submit(handle, method, *args, num_returns=num_returns)
        if method in RANK0_METHODS:
            return getattr(handle.handles[0], method).remote(*args)
        shared = [a if isinstance(a, Sharded) else _put_shared(a) for a in args]
        per_rank = []
        for r, h in enumerate(handle.handles):
            rank_args = [a.parts[r] if isinstance(a, Sharded) else a for a in shared]
            remote = getattr(h, method)
            if num_returns != 1:
                remote = remote.options(num_returns=num_returns)
            per_rank.append(remote.remote(*rank_args))
        if num_returns == 1:
            return Sharded(per_rank)
        return tuple(Sharded([refs[i] for refs in per_rank]) for i in range(num_returns))

    def gather(self, futures: Any) -> Any:
        items = futures if isinstance(futures, list) else [futures]
        try:
            _fail_fast([r for f in items for r in (f.parts if isinstance(f, Sharded) else [f])])
            values = [_combine(ray.get(f.parts)) if isinstance(f, Sharded) else ray.get(f) for f in items]
        except RayTaskError as e:
            # A call that failed because a peer rank died (a broken collective) is a lost rank,
            # recovered like the death itself; any other failure is the call's own error.
            dead = _dead_actors(self.actors())
            if dead:
                raise RankLost(f"{len(dead)} actor(s) of the run died: {e.cause!r}") from e
            raise
        return values if isinstance(futures, list) else values[0]

    def wait_restarted(self, handles: list) -> None:
        self.relaunch()


def _fail_fast(refs: list) -> None:
    """Wait for ``refs``, raising the first error as soon as any ref fails: a dead rank's peers
    block in a collective until its timeout, and the error must not wait for them."""
    pending = [r for r in refs if isinstance(r, ray.ObjectRef)]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ray.get(ready)


def _dead_actors(handles: list, timeout_s: float = 10.0) -> list:
    """The actors among ``handles`` that are dead (a busy actor counts as alive)."""
    pings = {h.ping.remote(): h for h in handles}
    ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=timeout_s)
    dead = []
    for ref in ready:
        try:
            ray.get(ref)
        except RayActorError:
            dead.append(pings[ref])
    return dead


def rendezvous(groups: dict[str, RoleGroup], *, timeout_s: float, sync_batchnorm: bool) -> None:
    """Form each role's process group: rank 0 names a free port on its node, every rank joins."""
    calls = []
    for group in groups.values():
        address = ray.get(group.handles[0].free_address.remote())
        calls += [
            h.join_group.remote(address, r, len(group), timeout_s=timeout_s, sync_batchnorm=sync_batchnorm)
            for r, h in enumerate(group.handles)
        ]
    ray.get(calls, timeout=timeout_s)


def lane_batches(pseudo: RoleGroup, stream_options: dict) -> Callable:
    """The Trainer's ``batches`` for a lane run: each lane's worker builds its own shard of every
    step's batch (its data loader or Ray Data stream runs in that worker); yields one
    :class:`Sharded` of object refs per step."""

    def batches(kind: str, dataset: Any, order: list[list[int]]):
        dataset_ref = ray.put(dataset)
        lanes = len(pseudo)
        ray.get(
            [
                h.open_stream.remote(kind, dataset_ref, shard_of(order, r, lanes), stream_options)
                for r, h in enumerate(pseudo.handles)
            ]
        )
        for _ in range(len(order)):
            yield Sharded([h.next_batch.remote(kind) for h in pseudo.handles])

    return batches
