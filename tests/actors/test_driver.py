"""The schedule over Ray actors: equivalence with in-process, resources, fault recovery (real local Ray)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import ray
import torch

from actors.driver import build_ray_trainer, launch_actors
from actors.executor import RayExecutor
from actors.placement import derive_resources
from pipeline.config import ResourcesConfig, load_config
from pipeline.data.topdown import LabeledDataset, UnlabeledDataset
from pipeline.method.schedule import LocalExecutor, sspcm_step
from pipeline.run_setup import build_local, load_run_data, make_codec
from pipeline.store.pseudo_label_store import PseudoLabelStore
from pipeline.trainer import Trainer, epoch_batches
from tests.helpers import tiny_overrides


def tiny_cfg(synthetic_data, out, method="sspcm", *extra):
    return load_config(None, [*tiny_overrides(synthetic_data, out, method), "train.num_threads=1", *extra])


def two_batches(cfg, data):
    codec = make_codec(cfg)
    lab = LabeledDataset(data.labeled, codec, data.skeleton, augment=cfg.augment, seed=0)
    unl = UnlabeledDataset(data.unlabeled, codec, data.skeleton, augment=cfg.augment, seed=0)
    collate = torch.utils.data.default_collate
    out = []
    for step, (li, ui) in enumerate(
        zip(epoch_batches(len(lab), 4, 2, 0, 0, 0), epoch_batches(len(unl), 4, 2, 0, 0, 1))
    ):
        out.append((collate([lab[i] for i in li]), collate([unl[i] for i in ui]), step))
    return out


def test_two_sspcm_steps_in_process_and_over_ray_are_identical(ray_session, synthetic_data, tmp_path):
    cfg = tiny_cfg(synthetic_data, tmp_path / "eq")
    data = load_run_data(cfg)
    batches = two_batches(cfg, data)
    local_nets, local_pseudo = build_local(cfg, data)
    ray_nets, ray_pseudo, pg = launch_actors(cfg, data)
    try:
        for labeled, unlabeled, step in batches:
            m_local = sspcm_step(LocalExecutor(), local_nets, local_pseudo, labeled, unlabeled, step)
            m_ray = sspcm_step(RayExecutor(), ray_nets, ray_pseudo, labeled, unlabeled, step)
            assert m_local.keys() == m_ray.keys()
            for k in m_local:
                assert m_ray[k] == pytest.approx(m_local[k], rel=1e-5, abs=1e-9), k
        for role, net in local_nets.items():
            remote = ray.get(ray_nets[role].get_weights.remote())
            for k, v in net.get_weights().items():
                torch.testing.assert_close(torch.from_numpy(remote[k]), torch.from_numpy(v))
    finally:
        for h in [*ray_nets.values(), ray_pseudo]:
            ray.kill(h)
        ray.util.remove_placement_group(pg)


def test_resources_are_derived_from_one_number():
    cpu_only = derive_resources(ResourcesConfig(), 3, {"CPU": 2.0})
    assert cpu_only.num_gpus == 0 and cpu_only.device == "cpu"
    assert 4 * cpu_only.num_cpus <= 2.0  # three networks + the pseudo labeler fit on 2 CPUs
    one_gpu = derive_resources(ResourcesConfig(nets_per_gpu=3), 3, {"CPU": 16.0, "GPU": 1.0})
    assert one_gpu.num_gpus == pytest.approx(1 / 3) and one_gpu.device == "cuda"
    per_gpu = derive_resources(ResourcesConfig(), 3, {"CPU": 16.0, "GPU": 4.0})
    assert per_gpu.num_gpus == 1.0
    with pytest.raises(ValueError, match="nets_per_gpu"):
        derive_resources(ResourcesConfig(), 3, {"CPU": 16.0, "GPU": 1.0})


def test_a_killed_network_actor_is_restored_and_the_run_finishes(ray_session, synthetic_data, tmp_path):
    """Kill the student's process mid-run: Ray restarts it, every network is restored from the
    latest checkpoint, and the run ends exactly where an uninterrupted run ends."""
    extra = ["optim.epochs=2", "optim.steps_per_epoch=3", "train.checkpoint_every_steps=2"]
    reference_cfg = tiny_cfg(synthetic_data, tmp_path / "reference", "sspcm", *extra)
    nets, pseudo = build_local(reference_cfg, load_run_data(reference_cfg))
    Trainer(reference_cfg, load_run_data(reference_cfg), nets, pseudo, LocalExecutor()).train()
    reference = nets["student"].get_weights()

    cfg = tiny_cfg(synthetic_data, tmp_path / "faulty", "sspcm", *extra)
    killed = []

    def batches_that_kill(kind, dataset, order):
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=order)
        for batch in loader:
            if kind == "labeled" and trainer.global_step == 3 and not killed:
                pid = ray.get(trainer.nets["student"].pid.remote())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            yield batch

    trainer, pg = build_ray_trainer(cfg, batches=batches_that_kill)
    try:
        trainer.train()
        assert killed and trainer.recoveries == 1
        assert trainer.global_step == 6 and trainer.epoch == 2
        assert ray.get(trainer.nets["student"].pid.remote()) != killed[0]  # a new process
        weights = ray.get(trainer.nets["student"].get_weights.remote())
    finally:
        for h in [*trainer.nets.values(), trainer.pseudo]:
            ray.kill(h)
        ray.util.remove_placement_group(pg)
    for k, v in reference.items():
        np.testing.assert_allclose(weights[k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    # the pseudo-label store: per epoch exactly the scheduled persons, none twice, none missing,
    # and the same labels as the uninterrupted run (the replayed steps replaced their files)
    data = load_run_data(cfg)
    faulty = PseudoLabelStore.open(tmp_path / "faulty" / "pseudo_labels")
    ref = PseudoLabelStore.open(tmp_path / "reference" / "pseudo_labels")
    assert faulty.epochs() == [0, 1]
    for epoch in (0, 1):
        order = epoch_batches(
            len(data.unlabeled), cfg.optim.unlabeled_batch_size, 3, cfg.train.seed, epoch, 1
        )
        table = faulty.read_epoch(epoch)
        got = table["person_index"].to_pylist()
        assert len(got) == len(set(got)) == 12
        assert set(got) == {i for batch in order for i in batch}
        a, b = faulty.read_rows(epoch), ref.read_rows(epoch)
        np.testing.assert_allclose(a.kpts_corrected, b.kpts_corrected, atol=1e-3)
