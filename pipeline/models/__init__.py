"""Networks (layer 2): SimpleBaseline (ResNet) and HRNet backbones built by name, the
``Network`` with its optimizer and LR schedule (``network``), and the heatmap loss (``losses``).

Every model maps a normalised input (N, 3, H, W) to heatmaps (N, K, H/4, W/4).
May import layers 0-1 (``config``, ``geometry``, ``store``) and other modules of this package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from pipeline.models.hrnet import HRNet
from pipeline.models.pretrained import LoadReport, load_backbone_checkpoint
from pipeline.models.resnet import ResNet
from pipeline.models.simple_baseline import SimpleBaseline

log = logging.getLogger(__name__)

_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    # quarter-width ResNet-18 SimpleBaseline for 128x96 CPU training
    "tiny": lambda k: SimpleBaseline(18, k, width=0.25, deconv_channels=64),
    # half-width ResNet-18 SimpleBaseline, a step up on CPU
    "small": lambda k: SimpleBaseline(18, k, width=0.5, deconv_channels=128),
    "simplebaseline_resnet18": lambda k: SimpleBaseline(18, k),
    "simplebaseline_resnet34": lambda k: SimpleBaseline(34, k),
    "simplebaseline_resnet50": lambda k: SimpleBaseline(50, k),
    "simplebaseline_resnet101": lambda k: SimpleBaseline(101, k),
    "hrnet_w32": lambda k: HRNet(32, k),
    "hrnet_w48": lambda k: HRNet(48, k),
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(name: str, num_joints: int, *, pretrained: str | None = None) -> nn.Module:
    """Build a pose model: (N, 3, H, W) -> (N, num_joints, H/4, W/4).

    Args:
        name: one of ``MODEL_NAMES``.
        num_joints: K, the number of heatmaps.
        pretrained: optional LOCAL ImageNet checkpoint for the backbone (see
            ``load_backbone_checkpoint``); never downloaded.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    if num_joints < 1:
        raise ValueError(f"num_joints must be >= 1, got {num_joints}")
    model = _BUILDERS[name](num_joints)
    if pretrained:
        load_backbone_checkpoint(model, pretrained)
    return model


__all__ = [
    "MODEL_NAMES",
    "HRNet",
    "LoadReport",
    "ResNet",
    "SimpleBaseline",
    "build_model",
    "load_backbone_checkpoint",
]
