"""`ray job submit` against a real head node started with `ray start --head` (CPU, tiny run)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.store.pseudo_label_store import PseudoLabelStore
from tests.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A head node of its own (own ports and temp dir); only its processes are stopped after."""
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.fail("the `ray` CLI is missing from the environment (ray[default] must be installed)")
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    port, dash = free_port(), free_port()
    # its own agent ports too: a Ray instance already running on this machine (the test
    # session's) holds the default dashboard-agent port, and the head's job agent would not start
    agent_ports = [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}:{os.environ['PATH']}"}
    cmd = [
        str(BIN / "ray"), "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
        "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
        "--object-store-memory=200000000", f"--temp-dir={temp_dir}", "--disable-usage-stats", *agent_ports,
    ]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
    try:
        yield {"address": f"http://127.0.0.1:{dash}", "env": env}
    finally:
        out = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_trains_with_actors(ray_head, synthetic_data, tmp_path):
    out = tmp_path / "job_run"
    overrides = [f"--{o}" for o in tiny_overrides(synthetic_data, out, "sspcm")]
    runtime_env = {
        "excludes": ["/.venv", "/data", "/runs", "/.git", "__pycache__"],  # anchored: not pipeline/data
        "env_vars": {"RAY_AUTH_MODE": "disabled"},
    }
    cmd = [
        str(BIN / "ray"), "job", "submit", "--address", ray_head["address"], "--working-dir", str(REPO),
        "--runtime-env-json", json.dumps(runtime_env), "--",
        "python", "-m", "jobs.train", "--log-level=WARNING", *overrides, "--resources.runtime=ray",
        "--data.loader=ray_data",  # batches built by Ray Data workers beside the four actors
    ]  # fmt: skip
    t0 = time.monotonic()
    # the head's job agent comes up a few seconds after `ray start` returns; until then the
    # submission is refused before any job is created, so retrying cannot run the job twice
    while True:
        proc = subprocess.run(cmd, env=ray_head["env"], capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        if "No available agent" not in log or time.monotonic() - t0 > 120:
            break
        time.sleep(2)
    assert proc.returncode == 0, log[-4000:]
    assert "succeeded" in log.lower(), log[-4000:]
    # the job wrote checkpoints for the three networks, metrics and the evaluation
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts[-1] == "step_00000004"
    assert {p.name for p in (out / "checkpoints" / ckpts[-1]).glob("*.pt")} == {
        "teacher_a.pt",
        "teacher_b.pt",
        "student.pt",
    }
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum("student/loss" in x for x in lines) == 4
    assert "eval/student/AP" in json.loads((out / "eval.json").read_text())
    # ... and the pseudo-label actor wrote the store: one partition per epoch, 2 steps x 4 persons
    store = PseudoLabelStore.open(out / "pseudo_labels")
    assert store.epochs() == [0, 1]
    assert [store.read_epoch(e).num_rows for e in (0, 1)] == [8, 8]
    assert time.monotonic() - t0 < 600
