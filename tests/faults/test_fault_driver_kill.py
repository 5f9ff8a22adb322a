"""The driver (``python -m jobs.train --resources.runtime=ray``) killed with SIGKILL mid-run, then
run again with ``--resume``: it continues from the latest checkpoint and ends as an
uninterrupted run ends.

The driver runs as a subprocess in its own session with its own Ray instance (``RAY_TMPDIR``:
its own temp dir, no ``RAY_ADDRESS``); after the kill every process of that instance is killed
too, and at the end none is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tests.faults.fault_helpers import (
    AP_KEY,
    AP_TOLERANCE,
    CHECKPOINT_EVERY,
    EPOCHS,
    STEPS,
    check_store,
    cmdline,
    descendants,
    prediction_diff,
    recomputed_steps,
    run_config,
    run_overrides,
    session_processes,
    sigkill,
)

REPO = Path(__file__).resolve().parents[2]
# Killed once the checkpoint in the middle of epoch 0 (step 2) exists and step 3 is logged: the
# kill lands while epoch 0 closes (its labels compacted, its checkpoint written) or, if later,
# in epoch 1; the steps since the latest checkpoint (0 to 2) run again.
KILL_AFTER_CHECKPOINT = "step_00000002"
KILL_AFTER_STEP = 3
TIMEOUT_S = 240


class Driver:
    """``jobs.train`` over Ray in a session of its own; ``kill`` takes its Ray instance with it."""

    def __init__(self, args: list[str], temp_dir: str, log_path: Path):
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update({"RAY_TMPDIR": temp_dir, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)})
        self.temp_dir = temp_dir
        self.log_path = log_path
        self.log = open(log_path, "w")
        cmd = [sys.executable, "-m", "jobs.train", "--log-level=WARNING", *args, "--resources.runtime=ray"]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.seen: set[int] = set()  # every process of its Ray instance seen so far

    def processes(self) -> list[int]:
        """Live processes of this driver's session, below it, or naming its Ray temp dir."""
        found = set(session_processes(self.proc.pid)) | set(descendants(self.proc.pid))
        found |= {p for p in self.seen if Path(f"/proc/{p}").exists()}
        found |= {int(p) for p in os.listdir("/proc") if p.isdigit() and self.temp_dir in cmdline(int(p))}
        self.seen |= found
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL the driver and, with it, every process of its Ray instance."""
        before = self.processes()
        sigkill([self.proc.pid, *before])
        self.proc.wait(timeout=30)
        sigkill(self.processes())

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        sigkill(self.processes())
        self.log.close()


def logged_steps(run_dir: Path) -> set[int]:
    """Training steps in ``metrics.jsonl`` so far (complete lines only)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return set()
    return {json.loads(x)["step"] for x in lines if x.endswith("\n") and "student/loss" in x}


def wait_gone(driver: Driver, timeout_s: float = 30.0) -> list[int]:
    """Processes of ``driver``'s instance still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := driver.processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_a_killed_driver_resumes_from_its_latest_checkpoint(synthetic_data, tmp_path, reference):
    out = tmp_path / "run"
    args = [f"--{o}" for o in run_overrides(synthetic_data, out)]
    temp_dir = tempfile.mkdtemp(prefix="rf", dir="/tmp")  # short: Ray's socket paths live here
    drivers = []
    try:
        # 1. the first driver, killed as soon as the checkpoint in the middle of epoch 0 exists
        first = Driver(args, temp_dir, tmp_path / "first.log")
        drivers.append(first)
        marker = out / "checkpoints" / KILL_AFTER_CHECKPOINT / "_COMPLETE"
        deadline = time.monotonic() + TIMEOUT_S
        while not (marker.exists() and KILL_AFTER_STEP in logged_steps(out)):
            assert first.proc.poll() is None, first.output()[-4000:]
            assert time.monotonic() < deadline, first.output()[-4000:]
            time.sleep(0.02)
        assert first.processes(), "no Ray processes found for the driver"
        first.kill()
        assert first.proc.returncode == -9
        left = wait_gone(first)
        assert not left, [(p, cmdline(p)) for p in left]
        assert not (out / "eval.json").exists()  # it did not finish
        done_at_kill = sorted(p.name for p in (out / "checkpoints").iterdir() if (p / "_COMPLETE").exists())
        assert f"step_{EPOCHS * STEPS:08d}" not in done_at_kill

        # 2. the same command with --resume: continues from the latest checkpoint
        second = Driver([*args, "--resume"], temp_dir, tmp_path / "second.log")
        drivers.append(second)
        assert second.proc.wait(timeout=TIMEOUT_S) == 0, second.output()[-4000:]
        results = json.loads(second.output().strip().splitlines()[-1])
        left = wait_gone(second)
        assert not left, [(p, cmdline(p)) for p in left]  # ray.shutdown took its instance along
    finally:
        for d in drivers:
            d.close()
        shutil.rmtree(temp_dir, ignore_errors=True)

    recomputed = recomputed_steps(out)
    assert recomputed <= CHECKPOINT_EVERY
    final = out / "checkpoints" / f"step_{EPOCHS * STEPS:08d}"
    state = json.loads((final / "trainer_state.json").read_text())
    assert (state["epoch"], state["global_step"]) == (EPOCHS, EPOCHS * STEPS)
    for role, ref in reference["weights"].items():
        got = torch.load(final / f"{role}.pt", weights_only=True)["model"]
        for k, v in ref.items():
            np.testing.assert_allclose(got[k].numpy(), v, rtol=1e-4, atol=1e-6, err_msg=f"{role} {k}")
    cfg = run_config(synthetic_data, out)
    store = check_store(out, cfg, reference["num_unlabeled"], reference["dir"])
    ap_diff = abs(results[AP_KEY] - reference["results"][AP_KEY])
    assert ap_diff <= AP_TOLERANCE
    figures = {
        "fault": "driver",
        "checkpoints_at_kill": done_at_kill,
        "recomputed_steps": recomputed,
        **store,
        "ap": results[AP_KEY],
        "ap_diff": ap_diff,
        "max_val_keypoint_diff_px": prediction_diff(out, reference["dir"]),
    }
    print(f"\nFAULT {figures}")
