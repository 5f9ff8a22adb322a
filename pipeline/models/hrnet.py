"""HRNet-W32/W48 pose network (Sun et al., CVPR 2019), top-down heatmap head.

Module names follow the official ``pose_hrnet`` code and timm's ``hrnet_w32``/``hrnet_w48``
(``conv1, bn1, conv2, bn2, layer1, transition1, stage2, transition2, stage3, transition3,
stage4, final_layer``), so the ImageNet HRNet checkpoints load into the backbone. As in the pose
code, the last module of stage 4 only fuses into the highest-resolution branch; the classification
net's extra stage-4 fuse layers are therefore unused when loading its weights.

One deliberate difference: fuse layers upsample to the exact size of the target branch instead of
by a fixed factor, so inputs whose size is not a multiple of 32 work (identical otherwise).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.resnet import BasicBlock, Bottleneck, make_layer


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by an all-to-all fusion.

    Input: list of B tensors, branch b of shape (N, C_b, H/2**b, W/2**b) (relative to branch 0).
    Output: the same list shapes, or only branch 0 when ``multi_scale_output`` is False.
    """

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, num_blocks) for c in channels)
        num_out = len(channels) if multi_scale_output else 1
        fuse_layers = []
        for i in range(num_out):
            row: list[nn.Module] = []
            for j, c_j in enumerate(channels):
                if j > i:  # lower resolution: 1x1 conv + BN, upsampled in forward
                    row.append(_conv_bn(c_j, channels[i], 1, 1, relu=False))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution: i - j strided 3x3 convs, ReLU between them
                    steps = i - j
                    row.append(
                        nn.Sequential(
                            *[
                                _conv_bn(
                                    c_j, channels[i] if k == steps - 1 else c_j, 3, 2, relu=k < steps - 1
                                )
                                for k in range(steps)
                            ]
                        )
                    )
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of (N, C_b, h_b, w_b) -> list of (N, C_i, h_i, w_i) for the output branches."""
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if len(xs) == 1:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = y + z
            out.append(self.relu(y))
        return out


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapt existing branches' channels and spawn new lower-resolution branches (from the last)."""
    layers: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(nn.Identity() if pre[i] == c else _conv_bn(pre[i], c, 3, 1, relu=True))
        else:
            n_down = i + 1 - len(pre)
            layers.append(
                nn.Sequential(
                    *[
                        _conv_bn(pre[-1], c if k == n_down - 1 else pre[-1], 3, 2, relu=True)
                        for k in range(n_down)
                    ]
                )
            )
    return nn.ModuleList(layers)


def _stage(channels: list[int], num_modules: int, multi_scale_output: bool = True) -> nn.Sequential:
    modules = [
        HighResolutionModule(channels, 4, multi_scale_output=multi_scale_output or m < num_modules - 1)
        for m in range(num_modules)
    ]
    return nn.Sequential(*modules)


def _apply_transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t(ys[i] if i < len(ys) else ys[-1]) for i, t in enumerate(transition)]


class HRNet(nn.Module):
    """(N, 3, H, W) normalised input -> (N, K, H/4, W/4) heatmaps from the stride-4 branch.

    Args:
        width: channels of the highest-resolution branch (32 or 48); branches are
            (W, 2W, 4W, 8W).
        num_joints: K, the number of output heatmaps.
    """

    HEAD_PREFIXES: ClassVar[tuple[str, ...]] = ("final_layer.",)

    def __init__(self, width: int = 32, num_joints: int = 17):
        super().__init__()
        self.width = width
        self.num_joints = num_joints
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)
        c2, c3, c4 = ([width * 2**b for b in range(n)] for n in (2, 3, 4))
        self.transition1 = _transition([64 * Bottleneck.expansion], c2)
        self.stage2 = _stage(c2, num_modules=1)
        self.transition2 = _transition(c2, c3)
        self.stage3 = _stage(c3, num_modules=4)
        self.transition3 = _transition(c3, c4)
        self.stage4 = _stage(c4, num_modules=3, multi_scale_output=False)
        self.final_layer = nn.Conv2d(width, num_joints, kernel_size=1, stride=1, padding=0)
        self._init_weights()

    def _init_weights(self) -> None:
        """The official pose code: convs normal(std=0.001), biases 0, BatchNorm 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, K, H/4, W/4) heatmaps."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(_apply_transition(self.transition1, [x]))
        ys = self.stage3(_apply_transition(self.transition2, ys))
        ys = self.stage4(_apply_transition(self.transition3, ys))
        return self.final_layer(ys[0])
