"""Building blocks shared by LivePortrait's rendering networks (F, W, G).

Attribute names (`conv`, `norm`, `conv1`, `mlp_shared`, ...) and their registration order are
part of the checkpoint format: they must match the official state dicts key for key
(`checkpoint_layout.json`), so do not rename them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_RELU_SLOPE_SPADE = 0.2
"""Slope of the LeakyReLU inside the SPADE decoder (the 2-D blocks elsewhere use torch's 0.01)."""


def make_coordinate_grid(
    depth: int, height: int, width: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Identity sampling grid `(depth, height, width, 3)` holding normalised `(x, y, z)`.

    Each axis runs over [-1, 1] with the first and last sample exactly on -1 and 1
    (x faces right, y down, z inward), the convention the keypoints are expressed in.
    """

    def axis(size: int) -> torch.Tensor:
        return 2.0 * (torch.arange(size, dtype=dtype, device=device) / (size - 1)) - 1.0

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def keypoint_gaussians(
    keypoints: torch.Tensor, grid: torch.Tensor, variance: float
) -> torch.Tensor:
    """Unnormalised Gaussian heatmaps of keypoints `(B, K, 3)` on `grid` `(D, H, W, 3)`.

    Returns `(B, K, D, H, W)` with `exp(-|p - kp|² / (2 variance))`.
    """
    diff = grid[None, None] - keypoints[:, :, None, None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / variance)


class SameBlock2d(nn.Module):
    """Conv2d → BatchNorm2d → ReLU (or LeakyReLU with torch's default slope), same size."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 3, leaky: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.ac: nn.Module = nn.LeakyReLU() if leaky else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """Conv2d → BatchNorm2d → ReLU → 2×2 average pooling (halves H and W)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class ResBlock3d(nn.Module):
    """Pre-activation 3-D residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, features: int, kernel_size: int = 3) -> None:
        super().__init__()
        padding = kernel_size // 2
        # Registration order conv1, conv2, norm1, norm2 mirrors the official key order.
        self.conv1 = nn.Conv3d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(features, features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(features, affine=True)
        self.norm2 = nn.BatchNorm3d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class DownBlock3d(nn.Module):
    """Conv3d → BatchNorm3d → ReLU → average pooling over H and W only (depth is kept)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock3d(nn.Module):
    """Nearest ×2 upsampling of H and W → Conv3d → BatchNorm3d → ReLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return F.relu(self.norm(self.conv(out)))


def _hourglass_width(block_expansion: int, max_features: int, level: int) -> int:
    """Channel count of the hourglass at `level` (level 0 = first down block's input)."""
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """Down path of the 3-D hourglass; returns the input and every level's output."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(
                in_features if i == 0 else _hourglass_width(block_expansion, max_features, i),
                _hourglass_width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class HourglassDecoder(nn.Module):
    """Up path of the 3-D hourglass with skip concatenation, then conv → BN → ReLU."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            # Every block but the deepest sees its input concatenated with a skip of equal width.
            widen = 1 if i == num_blocks - 1 else 2
            blocks.append(
                UpBlock3d(
                    widen * _hourglass_width(block_expansion, max_features, i + 1),
                    _hourglass_width(block_expansion, max_features, i),
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        out = levels[-1]
        for block, skip in zip(self.up_blocks, reversed(levels[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """3-D U-Net-like hourglass that pools over H and W only."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is divided by its spectral norm σ = uᵀ W v.

    Stores `weight_orig`, `weight_u`, `weight_v` under the same names as
    `torch.nn.utils.spectral_norm`, so official checkpoints load unchanged. The network is only
    ever run for inference: σ always comes from the stored `u`, `v` (no power iteration, in
    train mode too), which is exactly what the official model computes in eval mode.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True
    ) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        # Registration order bias, weight_orig, weight_u, weight_v mirrors the official keys.
        self.bias: nn.Parameter | None
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_channels)) if bias else None)
        weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(weight, a=5**0.5)
        self.weight_orig = nn.Parameter(weight)
        fan_in = in_channels * kernel_size * kernel_size
        self.register_buffer("weight_u", F.normalize(torch.randn(out_channels), dim=0, eps=1e-12))
        self.register_buffer("weight_v", F.normalize(torch.randn(fan_in), dim=0, eps=1e-12))

    def normalized_weight(self) -> torch.Tensor:
        """`weight_orig / σ`, σ estimated from the stored singular vectors."""
        matrix = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        sigma = torch.dot(self.weight_u, torch.mv(matrix, self.weight_v))
        return self.weight_orig / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation: instance-norm x, then modulate by convs of segmap."""

    hidden_channels = 128

    def __init__(self, norm_channels: int, label_channels: int) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_channels, affine=False)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, self.hidden_channels, kernel_size=3, padding=1), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(self.hidden_channels, norm_channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(self.hidden_channels, norm_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        if segmap.shape[-2:] != x.shape[-2:]:
            # Nearest resize to an equal size is the identity, so it is skipped there.
            segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        hidden = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResnetBlock(nn.Module):
    """Residual block of two spectral-norm convs, each preceded by SPADE and LeakyReLU(0.2).

    When the channel count changes, the shortcut is SPADE → 1×1 spectral-norm conv (no bias).
    """

    def __init__(self, fin: int, fout: int, label_channels: int) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, kernel_size=3)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, kernel_size=3)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = SPADE(fin, label_channels)
        self.norm_1 = SPADE(fmiddle, label_channels)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_channels)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(_spade_activation(self.norm_0(x, segmap)))
        dx = self.conv_1(_spade_activation(self.norm_1(dx, segmap)))
        return shortcut + dx


def _spade_activation(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_RELU_SLOPE_SPADE)
