"""Pose models: shapes, sizes, torchvision/timm checkpoint compatibility, and that they learn."""

from __future__ import annotations

import argparse
import importlib.util

import pytest
import torch

from pipeline.models import (
    MODEL_NAMES,
    HRNet,
    ResNet,
    SimpleBaseline,
    build_model,
    load_backbone_checkpoint,
)

torch.set_num_threads(1)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _gaussian_targets(n: int, k: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(n, k, h, w) unit-peak Gaussians (sigma 2) at random heatmap positions."""
    g = torch.Generator().manual_seed(seed)
    cx = torch.randint(2, w - 2, (n, k, 1, 1), generator=g).float()
    cy = torch.randint(2, h - 2, (n, k, 1, 1), generator=g).float()
    ys = torch.arange(h).view(1, 1, h, 1).float()
    xs = torch.arange(w).view(1, 1, 1, w).float()
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 2.0**2))


# ---- shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("tiny", (128, 96)),
        ("small", (64, 64)),
        ("simplebaseline_resnet18", (64, 32)),
        ("simplebaseline_resnet50", (64, 32)),
        ("simplebaseline_resnet101", (64, 32)),
        ("hrnet_w32", (64, 48)),
        ("hrnet_w48", (64, 48)),
    ],
)
def test_output_is_stride_4_heatmaps(name: str, size: tuple[int, int]) -> None:
    model = build_model(name, 17).eval()
    h, w = size
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out.shape == (1, 17, h // 4, w // 4)
    assert torch.isfinite(out).all()


def test_every_name_builds_with_its_joint_count() -> None:
    assert set(MODEL_NAMES) >= {
        "tiny",
        "simplebaseline_resnet18",
        "simplebaseline_resnet50",
        "simplebaseline_resnet101",
        "hrnet_w32",
        "hrnet_w48",
    }
    model = build_model("tiny", 14)
    assert isinstance(model, SimpleBaseline)
    assert isinstance(build_model("hrnet_w32", 14), HRNet)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 14, 16, 16)


def test_simple_baseline_rejects_input_not_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("tiny", 17)(torch.randn(1, 3, 64, 48))


def test_hrnet_handles_sizes_not_multiple_of_32() -> None:
    model = HRNet(8, 5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 100, 72)).shape == (1, 5, 25, 18)


def test_unknown_model_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="known models: .*tiny.*hrnet_w32"):
        build_model("resnet_9000", 17)


# ---- sizes and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: ResNet(18), 11_176_512),  # torchvision resnet18 (11,689,512) minus fc
        (lambda: ResNet(50), 23_508_032),  # torchvision resnet50 (25,557,032) minus fc
        (lambda: build_model("simplebaseline_resnet50", 17), 34.0e6),
        (lambda: build_model("hrnet_w32", 17), 28.5e6),
        (lambda: build_model("hrnet_w48", 17), 63.6e6),
    ],
)
def test_parameter_counts_match_published_figures(make, expected: float) -> None:
    assert _num_params(make()) == pytest.approx(expected, rel=0.01)


def test_resnet_state_dict_uses_torchvision_names() -> None:
    r18 = ResNet(18).state_dict()
    r50 = ResNet(50).state_dict()
    # torchvision's state dicts have 122 (resnet18) and 320 (resnet50) entries including fc.
    assert len(r18) + 2 == 122
    assert len(r50) + 2 == 320
    for key in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.num_batches_tracked",
    ]:
        assert key in r18
    assert r50["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert r50["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # stride on the 3x3 (v1.5)


def test_hrnet_state_dict_uses_official_names() -> None:
    keys = HRNet(8, 17).state_dict().keys()
    for key in [
        "conv2.weight",
        "bn2.running_var",
        "layer1.3.conv3.weight",
        "layer1.0.downsample.1.weight",
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition2.2.0.0.weight",
        "transition3.3.0.1.running_mean",
        "stage2.0.branches.1.3.conv2.weight",
        "stage2.0.fuse_layers.0.1.0.weight",
        "stage2.0.fuse_layers.1.0.0.0.weight",
        "stage3.3.fuse_layers.2.0.1.0.weight",
        "stage4.2.fuse_layers.0.3.1.weight",
        "final_layer.weight",
        "final_layer.bias",
    ]:
        assert key in keys, key
    # the last pose module fuses into the highest-resolution branch only
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in keys)
    assert any(k.startswith("stage4.1.fuse_layers.3.") for k in keys)


def test_simple_baseline_head_init_follows_the_paper_code() -> None:
    model = build_model("simplebaseline_resnet18", 17)
    assert torch.all(model.final_layer.bias == 0)
    assert 0.0007 < model.final_layer.weight.std().item() < 0.0013
    assert 0.0009 < model.deconv_layers[0].weight.std().item() < 0.0011
    assert torch.all(model.deconv_layers[1].weight == 1)


# ---- loading checkpoints ---------------------------------------------------------------


def _torchvision_style(width: float = 1.0, depth: int = 18, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's resnet: backbone keys plus ``fc.*``."""
    torch.manual_seed(seed)
    src = ResNet(depth, width=width)
    for p in src.parameters():
        p.data.normal_()
    state = dict(src.state_dict())
    state["fc.weight"] = torch.randn(1000, src.out_channels)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_torchvision_checkpoint_loads_into_simple_baseline(tmp_path) -> None:
    state = _torchvision_style()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    torch.manual_seed(0)
    fresh_head = build_model("simplebaseline_resnet18", 17).final_layer.weight.clone()
    torch.manual_seed(0)
    model = build_model("simplebaseline_resnet18", 17, pretrained=str(path))
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert torch.equal(model.final_layer.weight, fresh_head)  # the pose head keeps its init

    report = load_backbone_checkpoint(model, path)
    assert report.loaded == len(state) - 2
    assert report.ignored == ("fc.bias", "fc.weight")
    assert report.unused == ()


def test_timm_wrapped_checkpoint_with_module_prefix_loads(tmp_path) -> None:
    state = _torchvision_style(width=0.25)
    del state["fc.weight"], state["fc.bias"]
    wrapped = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    wrapped["module.classifier.weight"] = torch.randn(1000, 128)
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    model = build_model("tiny", 17)
    before = model.layer3[0].conv1.weight.clone()

    report = load_backbone_checkpoint(model, path)

    assert not torch.equal(model.layer3[0].conv1.weight, before)
    assert torch.equal(model.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert report.loaded == len(wrapped) - 1  # num_batches_tracked absent: optional
    assert report.ignored == ("classifier.weight",)


def test_hrnet_classification_checkpoint_loads_ignoring_its_head(tmp_path) -> None:
    model = HRNet(8, 17)
    state = {k: torch.randn_like(v.float()) for k, v in model.state_dict().items() if "final_layer" not in k}
    # parts of the ImageNet classification HRNet that the pose net does not have
    state["stage4.2.fuse_layers.1.0.0.0.weight"] = torch.randn(16, 8, 3, 3)
    state["incre_modules.0.0.conv1.weight"] = torch.randn(32, 8, 1, 1)
    state["final_layer.0.weight"] = torch.randn(2048, 1024, 1, 1)
    state["classifier.weight"] = torch.randn(1000, 2048)
    path = tmp_path / "hrnet_w8.pth"
    torch.save({"model": state}, path)
    head = model.final_layer.weight.clone()

    report = load_backbone_checkpoint(model, path)

    assert torch.equal(
        model.stage3[2].branches[1][0].conv1.weight, state["stage3.2.branches.1.0.conv1.weight"]
    )
    assert torch.equal(model.final_layer.weight, head)
    assert report.unused == ("stage4.2.fuse_layers.1.0.0.0.weight",)
    assert set(report.ignored) == {
        "incre_modules.0.0.conv1.weight",
        "final_layer.0.weight",
        "classifier.weight",
    }


def test_wrong_shape_raises_naming_file_and_key_and_changes_nothing(tmp_path) -> None:
    state = _torchvision_style(width=0.25)
    state["layer2.0.conv1.weight"] = torch.randn(32, 16, 5, 5)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    model = build_model("tiny", 17)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"bad_shape\.pth(.|\n)*layer2\.0\.conv1\.weight"):
        load_backbone_checkpoint(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_width_mismatch_checkpoint_raises(tmp_path) -> None:
    path = tmp_path / "full_width.pth"
    torch.save(_torchvision_style(width=0.5), path)
    with pytest.raises(ValueError, match="shape mismatches"):
        build_model("tiny", 17, pretrained=str(path))


def test_missing_backbone_key_raises_naming_it(tmp_path) -> None:
    state = _torchvision_style(width=0.25)
    del state["layer4.1.bn2.running_var"]
    path = tmp_path / "incomplete.pth"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"incomplete\.pth(.|\n)*missing backbone keys: layer4\.1\.bn2\.running_var"
    ):
        load_backbone_checkpoint(build_model("tiny", 17), path)


def test_missing_file_raises_naming_it(tmp_path) -> None:
    path = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(FileNotFoundError, match="nowhere/resnet50.pth"):
        build_model("tiny", 17, pretrained=str(path))


def test_non_state_dict_file_raises(tmp_path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_backbone_checkpoint(build_model("tiny", 17), path)


def test_safetensors_loads_or_explains_the_missing_package(tmp_path) -> None:
    state = _torchvision_style(width=0.25)
    path = tmp_path / "r18.safetensors"
    model = build_model("tiny", 17)
    if importlib.util.find_spec("safetensors") is None:
        path.write_bytes(b"\x00" * 16)
        with pytest.raises(ImportError, match="r18.safetensors(.|\n)*safetensors"):
            load_backbone_checkpoint(model, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
        assert load_backbone_checkpoint(model, path).loaded == len(state) - 2


# ---- learning ------------------------------------------------------------------------


def test_tiny_model_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", 4).train()
    images = torch.randn(4, 3, 64, 64)
    targets = _gaussian_targets(4, 4, 16, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = ((model(images) - targets) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, losses[::10]


def test_checkpoint_with_pickled_objects_raises_naming_it(tmp_path) -> None:
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(ValueError, match=r"with_args\.pth.*weights_only"):
        load_backbone_checkpoint(build_model("tiny", 17), path)
