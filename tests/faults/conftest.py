"""The uninterrupted run every fault test compares with (trained once per session)."""

from __future__ import annotations

import pytest

from pipeline.method.schedule import LocalExecutor
from pipeline.run_setup import build_local, load_run_data
from pipeline.trainer import Trainer
from tests.faults.fault_helpers import run_config


@pytest.fixture(scope="session")
def reference(synthetic_data, tmp_path_factory):
    """The fault tests' run (:func:`run_config`) uninterrupted, in-process: its directory, final
    results, final weights of every network and the pool size. (Over Ray the same run gives the
    same weights to rtol 1e-4: tests/actors/test_driver.py.)"""
    out = tmp_path_factory.mktemp("reference")
    cfg = run_config(synthetic_data, out)
    data = load_run_data(cfg)
    nets, pseudo = build_local(cfg, data)
    results = Trainer(cfg, data, nets, pseudo, LocalExecutor()).train()
    weights = {role: net.get_weights() for role, net in nets.items()}
    return {"dir": out, "results": results, "weights": weights, "num_unlabeled": len(data.unlabeled)}
