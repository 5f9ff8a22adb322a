"""Data-parallel role groups (DDP over gloo, real Ray): N ranks x b persons == 1 rank x N*b."""

from __future__ import annotations

import math

import numpy as np
import pytest
import ray
import torch

from actors.driver import Lanes, train_ray
from actors.role_group import GroupExecutor, Sharded
from pipeline.config import ConfigError, load_config
from pipeline.data.topdown import LabeledDataset, UnlabeledDataset
from pipeline.method.schedule import LocalExecutor, sspcm_step
from pipeline.run_setup import build_local, load_run_data, make_codec
from pipeline.store.checkpoints import checkpoint_store
from pipeline.trainer import epoch_batches, train_local
from tests.helpers import tiny_overrides

GLOBAL_BATCH = 8  # 2 ranks x 4 persons


def dp_cfg(synthetic_data, out, method, n, *extra):
    runtime = "ray" if n > 1 else "local"
    return load_config(
        None,
        [
            *tiny_overrides(synthetic_data, out, method),
            "train.num_threads=1",
            f"optim.batch_size={GLOBAL_BATCH}",
            f"optim.unlabeled_batch_size={GLOBAL_BATCH}",
            # SSCO pastes from a partner image of the same batch shard (per GPU in the reference),
            # which differs between 1 x 8 and 2 x 4 by design: off for this comparison.
            "method.ssco_num_pairs=0",
            f"resources.runtime={runtime}",
            f"resources.data_parallel={n}",
            "resources.collective_timeout_s=60",
            *extra,
        ],
    )


def global_relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over every floating tensor of two state dicts."""
    num = den = 0.0
    for k, v in b.items():
        if np.asarray(v).dtype.kind != "f":
            continue
        ref = np.asarray(v, dtype=np.float64)
        num += float(((np.asarray(a[k], dtype=np.float64) - ref) ** 2).sum())
        den += float((ref**2).sum())
    return math.sqrt(num / den)


def one_global_batch(cfg, data):
    codec = make_codec(cfg)
    lab = LabeledDataset(data.labeled, codec, data.skeleton, augment=cfg.augment, seed=0)
    unl = UnlabeledDataset(data.unlabeled, codec, data.skeleton, augment=cfg.augment, seed=0)
    collate = torch.utils.data.default_collate
    li = epoch_batches(len(lab), GLOBAL_BATCH, 1, 0, 0, 0)[0]
    ui = epoch_batches(len(unl), GLOBAL_BATCH, 1, 0, 0, 1)[0]
    return collate([lab[i] for i in li]), collate([unl[i] for i in ui])


def halves(batch: dict) -> Sharded:
    half = len(batch["images"]) // 2
    parts = [{k: v[r * half : (r + 1) * half] for k, v in batch.items()} for r in range(2)]
    return Sharded([ray.put(p) for p in parts])


def test_one_sspcm_step_at_two_ranks_equals_one_rank_with_the_double_batch(
    ray_session, synthetic_data, tmp_path
):
    """A, B and C after one SSPCM step (teachers in train-mode BN, sync BN on): 2 ranks x 4
    persons give the weights of 1 rank x 8 persons, and both ranks hold the same weights."""
    local_cfg = dp_cfg(synthetic_data, tmp_path / "one", "sspcm", 1)
    cfg = dp_cfg(synthetic_data, tmp_path / "two", "sspcm", 2)
    assert cfg.resources.sync_bn and not local_cfg.resources.sync_bn
    data = load_run_data(local_cfg)
    labeled, unlabeled = one_global_batch(local_cfg, data)
    nets, pseudo = build_local(local_cfg, data)
    start = {r: n.get_weights() for r, n in nets.items()}
    sspcm_step(LocalExecutor(), nets, pseudo, labeled, unlabeled, step=0)

    lanes = Lanes(cfg, data)
    try:
        ex = GroupExecutor(lanes.actors, lanes.relaunch)
        metrics = sspcm_step(ex, lanes.groups, lanes.pseudo, halves(labeled), halves(unlabeled), step=0)
        assert np.isfinite(metrics["student/loss"])
        for role, group in lanes.groups.items():
            rank0, rank1 = ray.get([h.get_weights.remote() for h in group.handles])
            expected = nets[role].get_weights()
            moved = global_relative_difference(expected, start[role])
            diff = global_relative_difference(rank0, expected)
            assert moved > 1e-3, (role, moved)  # the step changed the weights far beyond the tolerance
            assert diff < 1e-5, (role, diff)
            assert global_relative_difference(rank1, rank0) < 1e-7, role
    finally:
        lanes.close()


def test_supervised_on_ray_train_at_two_workers_equals_one_process(ray_session, synthetic_data, tmp_path):
    """Ray Train's TorchTrainer, 2 workers x 4 persons, one step: the student equals the
    in-process run with 8 persons; the run directory has the usual checkpoint and evaluation."""
    extra = ["optim.epochs=1", "optim.steps_per_epoch=1"]
    local_cfg = dp_cfg(synthetic_data, tmp_path / "one", "supervised", 1, *extra)
    cfg = dp_cfg(synthetic_data, tmp_path / "two", "supervised", 2, *extra)
    train_local(local_cfg)
    results = train_ray(cfg)
    assert np.isfinite(results["eval/student/AP"])
    expected = checkpoint_store(local_cfg).load_network_state(checkpoint_store(local_cfg).latest(), "student")
    ckpt = checkpoint_store(cfg).latest()
    assert ckpt.endswith("step_00000001")
    got = checkpoint_store(cfg).load_network_state(ckpt, "student")
    start = checkpoint_store(cfg).load_network_state(checkpoint_store(cfg).list()[0], "student")
    assert global_relative_difference(expected["model"], start["model"]) > 1e-3
    assert global_relative_difference(got["model"], expected["model"]) < 1e-5
    assert (tmp_path / "two" / "eval.json").is_file()
    assert any((tmp_path / "two" / "ray_train").iterdir())  # Ray Train's copy of the checkpoints


def test_a_global_batch_that_does_not_split_is_refused(synthetic_data, tmp_path):
    with pytest.raises(ConfigError, match="optim.batch_size=6.*data_parallel=4"):
        load_config(
            None,
            [*tiny_overrides(synthetic_data, tmp_path, "sspcm"), "optim.batch_size=6",
             "resources.runtime=ray", "resources.data_parallel=4"],
        )  # fmt: skip
    with pytest.raises(ConfigError, match="runtime=ray"):
        load_config(None, [*tiny_overrides(synthetic_data, tmp_path, "sspcm"), "resources.data_parallel=2"])


def run_lanes(cfg, data, kill_student_rank1_at: int | None = None):
    """Train ``cfg`` over lanes; SIGKILL rank 1 of the student when step ``kill_...`` starts.
    Returns (trainer, results, student weights of rank 0, killed pids)."""
    import os
    import signal

    from actors.role_group import lane_batches
    from pipeline.trainer import Trainer

    lanes = Lanes(cfg, data)
    killed: list[int] = []
    inner = lane_batches(lanes.pseudo, {"loader": "local"})

    def batches(kind, dataset, order):
        for batch in inner(kind, dataset, order):
            if kind == "labeled" and trainer.global_step == kill_student_rank1_at and not killed:
                pid = ray.get(lanes.groups["student"].handles[1].pid.remote())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            yield batch

    try:
        ex = GroupExecutor(lanes.actors, lanes.relaunch)
        trainer = Trainer(cfg, data, lanes.groups, lanes.pseudo, ex, batches)
        results = trainer.train()
        weights = ray.get(lanes.groups["student"].handles[0].get_weights.remote())
    finally:
        lanes.close()
    return trainer, results, weights, killed


def test_a_killed_rank_restarts_every_lane_and_the_run_ends_as_without_it(
    ray_session, synthetic_data, tmp_path
):
    """SIGKILL rank 1 of the student mid-epoch: every lane is relaunched and restored from the
    latest checkpoint; the run ends with the weights of an uninterrupted run, and the store has
    each scheduled person exactly once per epoch."""
    from pipeline.store.pseudo_label_store import PseudoLabelStore

    extra = ["optim.epochs=2", "optim.steps_per_epoch=3", "train.checkpoint_every_steps=2"]
    cfg = dp_cfg(synthetic_data, tmp_path / "faulty", "sspcm", 2, *extra)
    data = load_run_data(cfg)
    _, ref_results, reference, _ = run_lanes(
        dp_cfg(synthetic_data, tmp_path / "reference", "sspcm", 2, *extra), data
    )
    trainer, results, weights, killed = run_lanes(cfg, data, kill_student_rank1_at=5)
    assert killed and trainer.recoveries == 1 and trainer.global_step == 6
    assert global_relative_difference(weights, reference) < 1e-4
    assert results["eval/student/AP"] == pytest.approx(ref_results["eval/student/AP"], abs=0.005)
    store = PseudoLabelStore.open(tmp_path / "faulty" / "pseudo_labels")
    for epoch in (0, 1):
        order = epoch_batches(len(data.unlabeled), GLOBAL_BATCH, 3, cfg.train.seed, epoch, 1)
        got = store.read_epoch(epoch)["person_index"].to_pylist()
        assert sorted(got) == sorted(i for batch in order for i in batch)  # none lost, none twice
        # the epoch's step files, compacted when it closed: one file per writer
        assert sorted(p.name for p in store.epoch_dir(epoch).iterdir()) == [
            f"part-{3 * epoch:08d}-{3 * epoch + 2:08d}-w{w:02d}.parquet" for w in (0, 1)
        ]


@pytest.mark.parametrize("first, then", [(1, 2), (2, 1)])
def test_a_run_resumes_at_another_number_of_ranks(ray_session, synthetic_data, tmp_path, first, then):
    """Epoch 0 at ``first`` ranks, then ``--resume`` at ``then`` ranks for epoch 1: the run ends
    where an uninterrupted single-rank run ends, and the store holds every scheduled person of
    each epoch once (plain files from one writer, ``-wRR`` files from two)."""
    from pipeline.store.pseudo_label_store import PseudoLabelStore

    def run(n, out, epochs, resume=False):
        cfg = dp_cfg(synthetic_data, out, "sspcm", n, f"optim.epochs={epochs}", "optim.steps_per_epoch=2")
        return cfg, (train_ray(cfg, resume=resume) if n > 1 else train_local(cfg, resume=resume))

    ref_cfg, reference = run(1, tmp_path / "reference", 2)
    run(first, tmp_path / "run", 1)
    cfg, results = run(then, tmp_path / "run", 2, resume=True)
    store = checkpoint_store(cfg)
    assert store.latest().endswith("step_00000004")
    got = store.load_network_state(store.latest(), "student")["model"]
    ref_store = checkpoint_store(ref_cfg)
    expected = ref_store.load_network_state(ref_store.latest(), "student")["model"]
    assert global_relative_difference(got, expected) < 1e-3
    assert results["eval/student/AP"] == pytest.approx(reference["eval/student/AP"], abs=0.005)
    labels = PseudoLabelStore.open(tmp_path / "run" / "pseudo_labels")
    data = load_run_data(cfg)
    for epoch, n in ((0, first), (1, then)):
        order = epoch_batches(len(data.unlabeled), GLOBAL_BATCH, 2, cfg.train.seed, epoch, 1)
        persons = labels.read_epoch(epoch)["person_index"].to_pylist()
        assert sorted(persons) == sorted(i for batch in order for i in batch)
        # compacted when the epoch closed: one file per writer (``-wRR`` files from two)
        assert len(list(labels.epoch_dir(epoch).iterdir())) == n
        assert len(list(labels.epoch_dir(epoch).glob("part-*-w*.parquet"))) == (2 if n == 2 else 0)
