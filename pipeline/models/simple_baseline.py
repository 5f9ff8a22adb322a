"""SimpleBaseline pose network (Xiao et al., ECCV 2018): ResNet + 3 deconvolutions + 1x1 conv.

The backbone modules sit at the top level (``conv1``, ``layer1`` ...), as in torchvision and in
the official ``pose_resnet`` code, so both ImageNet and official pose checkpoints keep their names.
The head is ``deconv_layers`` (ConvTranspose 4x4 stride 2, BN, ReLU, three times) and
``final_layer`` (1x1 conv to K joints).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.resnet import ResNet


class SimpleBaseline(ResNet):
    """(N, 3, H, W) normalised input -> (N, K, H/4, W/4) heatmaps (heatmap space).

    Args:
        depth: ResNet depth (18, 34, 50, 101).
        num_joints: K, the number of output heatmaps.
        width: backbone channel multiplier (1.0 for ImageNet-compatible weights).
        deconv_channels: channels of each deconvolution layer (256 in the paper).
        num_deconv: number of stride-2 deconvolutions (3 gives output stride 4).
    """

    HEAD_PREFIXES: ClassVar[tuple[str, ...]] = ("deconv_layers.", "final_layer.")

    def __init__(
        self,
        depth: int,
        num_joints: int,
        *,
        width: float = 1.0,
        deconv_channels: int = 256,
        num_deconv: int = 3,
    ):
        super().__init__(depth=depth, width=width)
        layers: list[nn.Module] = []
        in_ch = self.out_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(
                    in_ch, deconv_channels, 4, stride=2, padding=1, output_padding=0, bias=False
                ),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            in_ch = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_ch, num_joints, kernel_size=1, stride=1, padding=0)
        self.num_joints = num_joints
        self._init_head()

    def _init_head(self) -> None:
        """The paper's code: deconv and final conv normal(std=0.001), final bias 0, BN 1/0."""
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, K, H/4, W/4) heatmaps; H and W must be multiples of 32."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f"SimpleBaseline needs an input size that is a multiple of 32 (stride of layer4), "
                f"got {tuple(x.shape[-2:])}: heatmaps would not be H/4 x W/4"
            )
        return self.final_layer(self.deconv_layers(self.forward_features(x)))
