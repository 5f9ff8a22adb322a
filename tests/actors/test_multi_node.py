"""A data-parallel SSPCM run on a two-node local Ray cluster (``ray.cluster_utils.Cluster``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys
from ray.cluster_utils import Cluster
store = 150 * 1024**2
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": store})
cluster.add_node(num_cpus=2, object_store_memory=store)
cluster.wait_for_nodes()
import ray
ray.init(address=cluster.address, log_to_driver=False)
assert len([n for n in ray.nodes() if n["Alive"]]) == 2
from jobs.train import main
try:
    main(sys.argv[1:])
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_jobs_train_with_two_ranks_per_role_on_two_nodes(synthetic_data, tmp_path):
    """``jobs.train`` SSPCM, ``resources.data_parallel=2`` with STRICT_SPREAD lanes: rank 0 and
    rank 1 of every role run on different nodes, and the run reaches its final evaluation."""
    out = tmp_path / "run"
    args = [f"--{o}" for o in tiny_overrides(synthetic_data, out, "sspcm")]
    args += [
        "--train.num_threads=1",
        "--optim.batch_size=8",
        "--optim.unlabeled_batch_size=8",
        "--resources.runtime=ray",
        "--resources.data_parallel=2",
        "--resources.placement_strategy=STRICT_SPREAD",
        "--resources.collective_timeout_s=120",
        "--log-level=INFO",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    nodes = dict(re.findall(r"lane (\d) on node ([0-9a-f]+)", log))
    assert set(nodes) == {"0", "1"} and nodes["0"] != nodes["1"], log[-4000:]
    results = json.loads((out / "eval.json").read_text())
    assert "eval/student/AP" in results and "eval/ensemble_ab/AP" in results
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[-1] == "step_00000004"
