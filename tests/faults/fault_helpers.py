"""Helpers of the fault tests: the tiny run, processes to kill, and what a finished run left behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np

from pipeline.config import Config, load_config
from pipeline.store.pseudo_label_store import PseudoLabelStore
from pipeline.trainer import epoch_batches
from tests.helpers import tiny_overrides

# 2 epochs of 3 steps, a checkpoint every 2 steps: checkpoints at global steps 0 (initial),
# 2 (mid epoch 0), 3 (end of epoch 0), 4 (mid epoch 1) and 6 (the end).
EPOCHS, STEPS, CHECKPOINT_EVERY = 2, 3, 2
RUN_OVERRIDES = [
    f"optim.epochs={EPOCHS}",
    f"optim.steps_per_epoch={STEPS}",
    f"train.checkpoint_every_steps={CHECKPOINT_EVERY}",
    "train.num_threads=1",
]
AP_KEY = "eval/student/AP"
AP_TOLERANCE = 0.005
RAY_DATA_WORKER = "MapWorker(MapBatches(_BuildBatch))"  # process title of a Ray Data batch builder


def run_overrides(data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """The tiny SSPCM run of every fault test (``tiny_overrides`` + :data:`RUN_OVERRIDES`)."""
    return [*tiny_overrides(data, out, "sspcm"), *RUN_OVERRIDES, *extra]


def run_config(data: dict[str, Path], out: Path, *extra: str) -> Config:
    return load_config(None, run_overrides(data, out, *extra))


# ---- processes -----------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[3])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ray_data_workers(root: int | None = None) -> list[int]:
    """PIDs of the Ray Data workers building training batches among the descendants of ``root``
    (default: this process, whose Ray instance's raylet starts them)."""
    return [p for p in descendants(root or os.getpid()) if RAY_DATA_WORKER in cmdline(p)]


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a driver started with ``start_new_session``)."""
    return [p for p in _pids() if (st := _stat(p)) is not None and st[1] == sid]


def sigkill(pids) -> list[int]:
    """SIGKILL each pid that is still there; returns those signalled."""
    done = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            done.append(pid)
        except ProcessLookupError:
            pass
    return done


# ---- what a run left behind ----------------------------------------------------------------
def recomputed_steps(run_dir: Path) -> int:
    """Training steps logged more than once in ``metrics.jsonl`` (every step logs: log_every=1):
    the steps a recovery or a resume ran again."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if "student/loss" in x]
    assert set(steps) == set(range(1, EPOCHS * STEPS + 1)), steps  # every step ran
    return len(steps) - len(set(steps))


def check_store(run_dir: Path, cfg: Config, num_unlabeled: int, reference_dir: Path) -> dict:
    """The pseudo-label store of a finished run: per epoch exactly the scheduled persons once
    each, compacted into one file, and the labels of the uninterrupted run. Returns the rows lost
    and duplicated (asserted 0) and the largest label difference to the reference."""
    store = PseudoLabelStore.open(run_dir / "pseudo_labels")
    ref = PseudoLabelStore.open(reference_dir / "pseudo_labels")
    assert store.epochs() == list(range(EPOCHS))
    lost = duplicated = 0
    diff = 0.0
    for epoch in range(EPOCHS):
        order = epoch_batches(num_unlabeled, cfg.optim.unlabeled_batch_size, STEPS, cfg.train.seed, epoch, 1)
        scheduled = [i for batch in order for i in batch]
        got = store.read_epoch(epoch)["person_index"].to_pylist()
        lost += len(set(scheduled) - set(got))
        duplicated += len(got) - len(set(got))
        assert sorted(got) == sorted(scheduled), (epoch, sorted(got), sorted(scheduled))
        # closed epochs are compacted: one file holding keys (global steps) first..last
        first, last = epoch * STEPS, epoch * STEPS + STEPS - 1
        on_disk = sorted(p.name for p in (run_dir / "pseudo_labels" / f"epoch_{epoch:04d}").glob("*.parquet"))
        assert on_disk == [f"part-{first:08d}-{last:08d}.parquet"], on_disk
        a, b = store.read_rows(epoch), ref.read_rows(epoch)
        np.testing.assert_array_equal(a.person_index, b.person_index)
        diff = max(diff, float(np.abs(a.kpts_corrected - b.kpts_corrected).max()))
        np.testing.assert_allclose(a.kpts_corrected, b.kpts_corrected, atol=1e-3)
        assert a.heatmaps is not None and a.heatmaps.shape == b.heatmaps.shape
    return {"rows_lost": lost, "rows_duplicated": duplicated, "max_label_diff_px": diff}


def prediction_diff(run_dir: Path, reference_dir: Path) -> float:
    """Largest difference (image px) between the final student's validation keypoints of two
    runs (``results_student.json``, written by the final evaluation in the same order)."""
    a = json.loads((run_dir / "results_student.json").read_text())
    b = json.loads((reference_dir / "results_student.json").read_text())
    assert [r["image_id"] for r in a] == [r["image_id"] for r in b]
    return float(np.abs(np.array([r["keypoints"] for r in a]) - np.array([r["keypoints"] for r in b])).max())
