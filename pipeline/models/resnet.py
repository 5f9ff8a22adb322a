"""ResNet-18/34/50/101 backbones with torchvision's parameter names.

Parameter and buffer names are exactly torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` ...), so a torchvision ImageNet state dict (minus ``fc.*``) loads
directly. ``width`` scales every channel count (base 64 * width) for small CPU variants; a
width other than 1 cannot load ImageNet weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual: (N, in_ch, H, W) -> (N, planes, H/stride, W/stride)."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, torchvision v1.5) -> 1x1 with a residual.

    (N, in_ch, H, W) -> (N, 4 * planes, H/stride, W/stride).
    """

    expansion: ClassVar[int] = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]

RESNET_LAYERS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def make_layer(block: Block, in_ch: int, planes: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """A stage of ``num_blocks`` blocks; the first one strides and projects when shapes change."""
    out_ch = planes * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    layers = [block(in_ch, planes, stride, downsample)]
    layers += [block(out_ch, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet trunk without pooling head or ``fc``: (N, 3, H, W) -> (N, out_channels, H/32, W/32).

    Args:
        depth: 18, 34, 50 or 101.
        width: channel multiplier; stage i has ``round(64 * width) * 2**i`` planes.
    """

    def __init__(self, depth: int = 18, width: float = 1.0):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        block, counts = RESNET_LAYERS[depth]
        base = max(1, round(64 * width))
        self.depth = depth
        self.width = width
        self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = base
        stages = []
        for i, n in enumerate(counts):
            stages.append(make_layer(block, in_ch, base * 2**i, n, stride=1 if i == 0 else 2))
            in_ch = base * 2**i * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_ch
        self._init_backbone()

    def _init_backbone(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, BatchNorm weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised input -> (N, out_channels, H/32, W/32) layer4 features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, out_channels, H/32, W/32)."""
        return self.forward_features(x)
