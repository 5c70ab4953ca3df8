"""G: the SPADE decoder, warped 256×64×64 feature → 3×512×512 image in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lpstream.liveportrait.networks.blocks import LEAKY_RELU_SLOPE_SPADE, SPADEResnetBlock

MIDDLE_BLOCKS = 6


class SPADEDecoder(nn.Module):
    """Decodes the warped feature into an RGB image, conditioning every block on the feature.

    3×3 conv 256→512, six SPADE residual blocks, two (×2 nearest upsample, SPADE block) stages,
    LeakyReLU(0.2), 3×3 conv to `3·upscale²` channels, PixelShuffle, sigmoid.
    The input feature itself is the SPADE segmentation map. Defaults match `models.yaml`.
    """

    def __init__(
        self,
        upscale: int = 2,
        max_features: int = 512,
        block_expansion: int = 64,
        out_channels: int = 64,
        num_down_blocks: int = 2,
    ) -> None:
        super().__init__()
        feature_channels = min(max_features, block_expansion * (2**num_down_blocks))
        wide = 2 * feature_channels
        self.upscale = upscale
        self.fc = nn.Conv2d(feature_channels, wide, kernel_size=3, padding=1)
        # Individual attributes (not a ModuleList) because the checkpoint keys are G_middle_N.
        for i in range(MIDDLE_BLOCKS):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(wide, wide, feature_channels))
        self.up_0 = SPADEResnetBlock(wide, feature_channels, feature_channels)
        self.up_1 = SPADEResnetBlock(feature_channels, out_channels, feature_channels)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv_img: nn.Module
        if upscale <= 1:
            self.conv_img = nn.Conv2d(out_channels, 3, kernel_size=3, padding=1)
        else:
            self.conv_img = nn.Sequential(
                nn.Conv2d(out_channels, 3 * upscale * upscale, kernel_size=3, padding=1),
                nn.PixelShuffle(upscale_factor=upscale),
            )

    def middle_blocks(self) -> list[SPADEResnetBlock]:
        return [getattr(self, f"G_middle_{i}") for i in range(MIDDLE_BLOCKS)]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for block in self.middle_blocks():
            x = block(x, feature)
        x = self.up_0(self.up(x), feature)
        x = self.up_1(self.up(x), feature)
        x = self.conv_img(F.leaky_relu(x, LEAKY_RELU_SLOPE_SPADE))
        return torch.sigmoid(x)
