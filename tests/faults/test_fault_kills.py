"""Processes of an SSPCM run over Ray killed with SIGKILL mid-epoch: the run recovers.

Each test trains the tiny SSPCM run (2 epochs of 3 steps, a checkpoint every 2 steps) on the
session's real local Ray instance, kills processes at chosen steps, and checks that the run
finishes, that each kill costs at most one checkpoint interval of steps computed again, that the
pseudo-label store holds per epoch exactly the scheduled persons once each (compacted, and read
back as the uninterrupted run's labels), and that the final networks equal the uninterrupted
run's (weights to rtol 1e-4, AP within 0.005). The uninterrupted run is the same config trained
in-process (the ``reference`` fixture; over Ray the same run gives the same weights).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import ray
import torch

from actors.data_stream import batches_for
from actors.driver import build_ray_trainer
from pipeline.store.checkpoints import checkpoint_store
from tests.faults.fault_helpers import (
    AP_KEY,
    AP_TOLERANCE,
    CHECKPOINT_EVERY,
    EPOCHS,
    STEPS,
    check_store,
    prediction_diff,
    ray_data_workers,
    recomputed_steps,
    run_config,
    sigkill,
)


def local_batches(kind, dataset, order):
    return iter(torch.utils.data.DataLoader(dataset, batch_sampler=order))


def train_with_faults(cfg, faults, batches=local_batches):
    """Train ``cfg`` over Ray. ``faults`` maps a global step to ``fault(trainer)``, run once when
    the labeled batch of that step has been fetched (the step's calls not yet made).

    Returns the trainer, the final results, every network's final weights, the final pid of
    every actor and, per fault step, what the fault returned and the steps done since the latest
    checkpoint at that moment (``lost``: what a recovery computes again)."""
    fired = {}

    def batches_with_faults(kind, dataset, order):
        for batch in batches(kind, dataset, order):
            step = trainer.global_step
            if kind == "labeled" and step in faults and step not in fired:
                latest = checkpoint_store(cfg).load_trainer_state(checkpoint_store(cfg).latest())
                fired[step] = {"lost": step - latest["global_step"], "result": faults[step](trainer)}
            yield batch

    trainer, pg = build_ray_trainer(cfg, batches=batches_with_faults)
    try:
        results = trainer.train()
        weights = {role: ray.get(h.get_weights.remote()) for role, h in trainer.nets.items()}
        actors = {**trainer.nets, "pseudo": trainer.pseudo}
        pids = {name: ray.get(h.pid.remote()) for name, h in actors.items()}
    finally:
        for h in [*trainer.nets.values(), trainer.pseudo]:
            ray.kill(h)
        ray.util.remove_placement_group(pg)
    assert sorted(fired) == sorted(faults), "a fault never fired"
    return trainer, results, weights, pids, fired


def check_recovered(trainer, results, weights, reference, cfg, run_dir, name) -> dict:
    """Everything a recovered run must satisfy; returns its figures (printed for the docs)."""
    assert trainer.epoch == EPOCHS and trainer.global_step == EPOCHS * STEPS
    for role, ref in reference["weights"].items():
        for k, v in ref.items():
            np.testing.assert_allclose(weights[role][k], v, rtol=1e-4, atol=1e-6, err_msg=f"{role} {k}")
    store = check_store(run_dir, cfg, reference["num_unlabeled"], reference["dir"])
    ap_diff = abs(results[AP_KEY] - reference["results"][AP_KEY])
    assert ap_diff <= AP_TOLERANCE
    figures = {
        "fault": name,
        "recoveries": trainer.recoveries,
        "recomputed_steps": recomputed_steps(run_dir),
        **store,
        "ap": results[AP_KEY],
        "ap_diff": ap_diff,
        "max_val_keypoint_diff_px": prediction_diff(run_dir, reference["dir"]),
    }
    print(f"\nFAULT {figures}")
    return figures


def kill_actor(handle) -> int:
    pid = ray.get(handle.pid.remote())
    sigkill([pid])
    return pid


def test_killed_network_actors_are_restored_from_the_latest_checkpoint(
    ray_session, synthetic_data, tmp_path, reference
):
    """Teacher A killed in epoch 0 (before step 1; latest checkpoint: step 0), the student in
    epoch 1 (before step 5; latest checkpoint: step 4): Ray restarts each, every network goes
    back to the latest checkpoint, the steps since then run again."""
    out = tmp_path / "run"
    cfg = run_config(synthetic_data, out)
    faults = {
        1: lambda t: kill_actor(t.nets["teacher_a"]),
        5: lambda t: kill_actor(t.nets["student"]),
    }
    trainer, results, weights, pids, fired = train_with_faults(cfg, faults)
    assert pids["teacher_a"] != fired[1]["result"] and pids["student"] != fired[5]["result"]  # new processes
    figures = check_recovered(trainer, results, weights, reference, cfg, out, "teacher A + student actors")
    assert figures["recoveries"] == 2
    assert [fired[s]["lost"] for s in (1, 5)] == [1, 1]  # each <= CHECKPOINT_EVERY
    assert figures["recomputed_steps"] == 2  # one per kill


def test_a_killed_pseudo_label_actor_is_restarted_and_the_store_stays_exact(
    ray_session, synthetic_data, tmp_path, reference
):
    """Killed before step 5 (epoch 1; latest checkpoint: step 4, epoch 0 already compacted): Ray
    restarts it, the store forgets the labels of step 4 and on, the steps run again."""
    out = tmp_path / "run"
    cfg = run_config(synthetic_data, out)
    trainer, results, weights, pids, fired = train_with_faults(cfg, {5: lambda t: kill_actor(t.pseudo)})
    assert pids["pseudo"] != fired[5]["result"]  # Ray restarted it in a new process
    figures = check_recovered(trainer, results, weights, reference, cfg, out, "pseudo-label actor")
    assert figures["recoveries"] == 1 and fired[5]["lost"] == 1 <= CHECKPOINT_EVERY
    assert figures["recomputed_steps"] == 1


def test_a_killed_ray_data_worker_is_replaced_by_ray_data(ray_session, synthetic_data, tmp_path, reference):
    """``data.loader=ray_data``, one worker per stream: the worker of epoch 1's unlabeled stream
    is killed as soon as it starts. Ray Data restarts it and retries its task; the trainer gets
    the same batches (their randomness is keyed by seed, epoch and index) and sees no failure."""
    out = tmp_path / "run"
    cfg = run_config(synthetic_data, out, "data.loader=ray_data", "data.num_workers=1")
    killed: list[int] = []

    def kill_the_next_stream_worker(trainer):
        # fired when epoch 1's labeled stream has delivered its first batch: the epoch's
        # unlabeled stream starts next, and its worker is the one killed
        before = set(ray_data_workers())

        def watch():
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                killed.extend(sigkill([p for p in ray_data_workers() if p not in before]))
                time.sleep(0.02)

        threading.Thread(target=watch, daemon=True).start()

    trainer, results, weights, _, _ = train_with_faults(
        cfg, {STEPS: kill_the_next_stream_worker}, batches=batches_for(cfg)
    )
    assert killed, "no Ray Data worker was seen"
    figures = check_recovered(trainer, results, weights, reference, cfg, out, "Ray Data worker")
    assert figures["recoveries"] == 0 and figures["recomputed_steps"] == 0
