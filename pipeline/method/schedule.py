"""The training step of each method, written once against an executor.

An executor has ``put`` (share a batch once), ``submit`` (call a method on a handle, maybe
remotely, returning a future) and ``gather`` (wait for futures). ``LocalExecutor`` calls the
methods directly; the Ray executor (``actors/``) calls ``.remote`` / ``ray.put`` / ``ray.get``.
Calls that do not depend on each other are submitted before any is gathered, so on a cluster
A, B and C work at the same time.

The SSPCM step per batch (``docs/architecture.md`` follows it through the Ray actors):
  1. Teach: A and B predict the easy view (and, in ``snapshot`` mode, their previous-epoch copies).
  2. Correct: PCM picks the most position-consistent teacher pair per joint.
  3. Hard views: SSCO then the hard affine, one per network, targets mapped by the view matrices.
  4. Learn: A, B and C each take one optimizer step on 0.5*sup + consistency.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Executor(Protocol):
    def put(self, value: Any) -> Any: ...

    def submit(self, handle: Any, method: str, *args: Any, num_returns: int = 1) -> Any: ...

    def gather(self, futures: Any) -> Any: ...

    # errors after which the trainer restores every network from its latest checkpoint
    recoverable_errors: tuple[type[BaseException], ...]

    def wait_restarted(self, handles: list) -> None: ...


class LocalExecutor:
    """Runs every call in this process, immediately."""

    recoverable_errors: tuple[type[BaseException], ...] = ()  # nothing in-process is restartable

    def wait_restarted(self, handles: list) -> None:
        return None

    def put(self, value: Any) -> Any:
        return value

    def submit(self, handle: Any, method: str, *args: Any, num_returns: int = 1) -> Any:
        return getattr(handle, method)(*args)

    def gather(self, futures: Any) -> Any:
        return futures


def _merge(prefix_metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, metrics in prefix_metrics.items():
        for k, v in metrics.items():
            out[f"{prefix}/{k}"] = float(v)
    return out


def supervised_step(ex: Executor, nets: Mapping[str, Any], labeled: dict, **_: Any) -> dict[str, float]:
    """Supervised baseline: every network in ``nets`` steps on the labeled batch alone."""
    labeled = ex.put(labeled)
    roles = list(nets)
    results = ex.gather([ex.submit(nets[r], "train_step", labeled) for r in roles])
    return _merge(dict(zip(roles, results)))


def dual_step(
    ex: Executor,
    nets: Mapping[str, Any],
    pseudo: Any,
    labeled: dict,
    unlabeled: dict,
    step: int,
    unsup_scale: float = 1.0,
    **_: Any,
) -> dict[str, float]:
    """Dual Network baseline: A and B teach each other (Joint Cutout + hard affine)."""
    labeled, unlabeled = ex.put(labeled), ex.put(unlabeled)
    a, b = nets["teacher_a"], nets["teacher_b"]
    hm_a, hm_b = ex.submit(a, "predict", unlabeled), ex.submit(b, "predict", unlabeled)
    hard_a, hard_b, stats = ex.submit(pseudo, "dual_targets", hm_a, hm_b, unlabeled, step, num_returns=3)
    steps = [
        ex.submit(a, "train_step", labeled, hard_a, None, unsup_scale),
        ex.submit(b, "train_step", labeled, hard_b, None, unsup_scale),
    ]
    m_a, m_b, stats = ex.gather(steps + [stats])
    return {**_merge({"teacher_a": m_a, "teacher_b": m_b}), **_merge({"pseudo": stats})}


def sspcm_step(
    ex: Executor,
    nets: Mapping[str, Any],
    pseudo: Any,
    labeled: dict,
    unlabeled: dict,
    step: int,
    epoch: int = 0,
    previous: str = "snapshot",
    unsup_scale: float = 1.0,
    **_: Any,
) -> dict[str, float]:
    """One SSPCM step: teach, correct (PCM), hard views (SSCO), learn — A, B and C at once."""
    labeled, unlabeled = ex.put(labeled), ex.put(unlabeled)
    a, b, c = nets["teacher_a"], nets["teacher_b"], nets["student"]
    # 1. Teach (current and, in snapshot mode, previous-epoch teachers), all issued together.
    hm_a, hm_b = ex.submit(a, "predict", unlabeled), ex.submit(b, "predict", unlabeled)
    if previous == "snapshot":
        prev_a = ex.submit(a, "predict_previous", unlabeled)
        prev_b = ex.submit(b, "predict_previous", unlabeled)
    else:  # ``cache`` mode reads last epoch's labels from the pseudo-label store
        prev_a, prev_b = ex.submit(pseudo, "previous_from_store", unlabeled, epoch, num_returns=2)
    # 2 + 3. Correct and build the three hard views.
    hard_a, hard_b, hard_c, stats = ex.submit(
        pseudo, "sspcm_targets", hm_a, hm_b, prev_a, prev_b, unlabeled, step, epoch, num_returns=4
    )
    # 4. Learn: three optimizer steps at once.
    steps = [
        ex.submit(a, "train_step", labeled, hard_a, None, unsup_scale),
        ex.submit(b, "train_step", labeled, hard_b, None, unsup_scale),
        ex.submit(c, "train_step", labeled, hard_c, None, unsup_scale),
    ]
    m_a, m_b, m_c, stats = ex.gather(steps + [stats])
    return {**_merge({"teacher_a": m_a, "teacher_b": m_b, "student": m_c}), **_merge({"pcm": stats})}


STEP_FUNCTIONS = {"supervised": supervised_step, "dual": dual_step, "sspcm": sspcm_step}
METHOD_ROLES = {
    "supervised": ("student",),
    "dual": ("teacher_a", "teacher_b"),
    "sspcm": ("teacher_a", "teacher_b", "student"),
}
