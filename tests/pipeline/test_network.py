import numpy as np
import pytest
import torch

from pipeline.models.network import Network, NetworkSpec

torch.set_num_threads(1)


def batch(seed: int, n: int = 4, k: int = 17, size=(64, 64)) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    targets = torch.zeros(n, k, h // 4, w // 4)
    ys = torch.randint(0, h // 4, (n, k), generator=g)
    xs = torch.randint(0, w // 4, (n, k), generator=g)
    targets[torch.arange(n)[:, None], torch.arange(k)[None], ys, xs] = 1.0
    return {
        "images": torch.randn(n, 3, h, w, generator=g),
        "targets": targets,
        "target_weights": torch.ones(n, k),
    }


def spec(role="student", seed=0) -> NetworkSpec:
    return NetworkSpec(role=role, model_name="tiny", num_joints=17, lr=1e-3, seed=seed, num_threads=1)


def test_train_step_learns_a_fixed_batch():
    net = Network(spec())
    b = batch(0)
    first = net.train_step(b)["loss"]
    for _ in range(30):
        last = net.train_step(b)["loss"]
    assert last < first / 3


def test_consistency_term_and_weights():
    net = Network(spec())
    m = net.train_step(batch(0), hard=batch(1))
    assert {"loss", "sup_loss", "unsup_loss", "lr"} <= set(m)
    assert m["loss"] == pytest.approx(0.5 * m["sup_loss"] + m["unsup_loss"], rel=1e-5)


def test_roles_start_from_different_weights_reproducibly():
    a1, a2, b = Network(spec("teacher_a")), Network(spec("teacher_a")), Network(spec("teacher_b"))
    wa1, wa2, wb = a1.get_weights(), a2.get_weights(), b.get_weights()
    assert all(np.array_equal(wa1[k], wa2[k]) for k in wa1)
    assert any(not np.array_equal(wa1[k], wb[k]) for k in wa1 if wa1[k].dtype.kind == "f")


def test_state_dict_round_trip_continues_identically():
    a = Network(spec())
    a.train_step(batch(0))
    a.end_epoch()
    b = Network(spec(seed=5))
    b.load_state_dict(a.state_dict())
    ma, mb = a.train_step(batch(1)), b.train_step(batch(1))
    assert ma == mb
    for k, v in a.get_weights().items():
        np.testing.assert_array_equal(v, b.get_weights()[k])
    torch.testing.assert_close(a.predict_previous(batch(2)), b.predict_previous(batch(2)))


def test_previous_epoch_copy_is_frozen():
    net = Network(spec())
    b = batch(0)
    assert net.predict_previous(b) is None
    net.end_epoch()
    torch.testing.assert_close(net.predict_previous(b), net.predict(b))
    net.train_step(b)
    assert not torch.allclose(net.predict_previous(b), net.predict(b))


def test_lr_schedule_steps_at_epochs():
    net = Network(
        NetworkSpec(role="student", model_name="tiny", num_joints=17, lr=1.0, lr_steps=(2,), lr_factor=0.1)
    )
    lrs = []
    for _ in range(3):
        lrs.append(net.optimizer.param_groups[0]["lr"])
        net.end_epoch(keep_snapshot=False)
    assert lrs == pytest.approx([1.0, 1.0, 0.1])


def _save_network(net: Network, path) -> None:
    torch.save(net.state_dict(), path)


def test_init_weights_start_from_a_trained_pose_checkpoint(tmp_path):
    trained = Network(spec("student"))
    trained.train_step(batch(0))
    _save_network(trained, tmp_path / "student.pt")
    # a teacher started from the student's file: same model weights, fresh optimizer and counters
    teacher = Network(NetworkSpec(**{**spec("teacher_b").__dict__, "init_weights": str(tmp_path)}))
    for k, v in trained.get_weights().items():
        np.testing.assert_array_equal(v, teacher.get_weights()[k])
    assert teacher.step == 0 and not teacher.optimizer.state
    fresh = Network(spec("teacher_b"))
    assert any(
        not np.array_equal(v, fresh.get_weights()[k])
        for k, v in teacher.get_weights().items()
        if v.dtype.kind == "f"
    )


def test_init_weights_of_another_architecture_is_a_clear_error(tmp_path):
    _save_network(Network(spec("student")), tmp_path / "student.pt")
    other = NetworkSpec(
        **{**spec().__dict__, "model_name": "small", "init_weights": str(tmp_path / "student.pt")}
    )
    with pytest.raises(ValueError, match=r"student\.pt.*tiny.*small"):
        Network(other)
    missing = NetworkSpec(**{**spec().__dict__, "init_weights": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match="nope"):
        Network(missing)


def _bn_running_means(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_teacher_forward_uses_batch_statistics_by_default():
    """Reference: the teachers' pseudo-label forwards run BatchNorm in train mode."""
    net = Network(spec("teacher_a"))
    b = batch(0)
    before = _bn_running_means(net.model)
    net.model.eval()
    out = net.predict(b)
    assert not net.model.training  # the network's own mode is left as it was
    after = _bn_running_means(net.model)
    assert any(not torch.equal(x, y) for x, y in zip(before, after))  # running statistics moved
    net.model.train()
    with torch.no_grad():
        torch.testing.assert_close(out, net.model(b["images"]))
        net.model.eval()
        assert not torch.allclose(out, net.model(b["images"]), atol=1e-4)


def test_teacher_forward_in_eval_mode_when_asked():
    net = Network(NetworkSpec(**{**spec("teacher_a").__dict__, "teacher_bn": "eval"}))
    b = batch(0)
    before = _bn_running_means(net.model)
    out = net.predict(b)
    net.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(out, net.model(b["images"]))
    assert all(torch.equal(x, y) for x, y in zip(before, _bn_running_means(net.model)))


@pytest.mark.parametrize("separate", [True, False])
def test_labeled_and_hard_forwards_separate_or_joint(separate):
    """Reference: labeled and hard batches go through separate forwards (BN statistics per batch)."""
    s = NetworkSpec(**{**spec().__dict__, "separate_forwards": separate})
    net, probe = Network(s), Network(s)
    lab, hard = batch(0), batch(1)
    m = net.train_step(lab, hard=hard)
    probe.model.train()
    with torch.no_grad():
        if separate:
            out_lab, out_hard = probe.model(lab["images"]), probe.model(hard["images"])
        else:
            both = probe.model(torch.cat([lab["images"], hard["images"]]))
            out_lab, out_hard = both[:4], both[4:]
    from pipeline.models.losses import joints_mse_loss

    sup = joints_mse_loss(out_lab, lab["targets"], lab["target_weights"])
    unsup = joints_mse_loss(out_hard, hard["targets"], hard["target_weights"])
    assert m["sup_loss"] == pytest.approx(float(sup), rel=1e-5)
    assert m["unsup_loss"] == pytest.approx(float(unsup), rel=1e-5)
