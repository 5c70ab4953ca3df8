"""F: the appearance feature extractor, source image → 3-D appearance feature volume f_s."""

from __future__ import annotations

import torch
from torch import nn

from lpstream.liveportrait.networks.blocks import DownBlock2d, ResBlock3d, SameBlock2d


class AppearanceFeatureExtractor(nn.Module):
    """Maps a 1×3×256×256 RGB image in [0, 1] to a 1×32×16×64×64 feature volume.

    2-D conv stem and down blocks, a 1×1 conv to `max_features` channels, a reshape of the
    channels into `reshape_channel × reshape_depth`, then 3-D residual blocks.
    Defaults are the official `models.yaml` hyper-parameters.
    """

    def __init__(
        self,
        image_channel: int = 3,
        block_expansion: int = 64,
        num_down_blocks: int = 2,
        max_features: int = 512,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
    ) -> None:
        super().__init__()
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(
                f"reshape_channel × reshape_depth ({reshape_channel}×{reshape_depth}) must equal "
                f"max_features ({max_features})"
            )
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth

        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=3)
        widths = [min(max_features, block_expansion * (2**i)) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(widths[i], widths[i + 1], kernel_size=3) for i in range(num_down_blocks)
        )
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            # The official checkpoint names these blocks '3dr0', '3dr1', ...
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, kernel_size=3))

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        batch, _, height, width = out.shape
        volume = out.view(batch, self.reshape_channel, self.reshape_depth, height, width)
        return self.resblocks_3d(volume)
