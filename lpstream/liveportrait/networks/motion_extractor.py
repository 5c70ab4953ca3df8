"""M: the motion extractor, a ConvNeXt-V2-tiny backbone with seven linear heads.

One 256×256 face crop in, the implicit-keypoint description of that face out: canonical
keypoints, head-pose bin logits, translation, expression deltas and scale. The state dict
matches the official checkpoint with its `detector.` prefix, so official weights load with
`strict=True`.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_KEYPOINTS = 21
NUM_POSE_BINS = 66
TINY_DEPTHS = (3, 3, 9, 3)
TINY_DIMS = (96, 192, 384, 768)


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an (N, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on channels-last input: rescale channels by their relative L2 energy."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Zero-initialised so a fresh block starts as the identity, as in ConvNeXt-V2.
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = torch.sqrt(x.pow(2).sum(dim=(1, 2), keepdim=True))
        relative = energy / (energy.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * relative) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """Depthwise 7×7 conv → LayerNorm → 4× MLP with GELU and GRN, as a residual branch.

    `drop_path` is stochastic depth: it drops the whole branch per sample in training only;
    in eval mode (all inference) the block is deterministic.
    """

    def __init__(self, channels: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, kernel_size=7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(4 * channels)
        self.pwconv2 = nn.Linear(4 * channels, channels)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.dwconv(x).permute(0, 2, 3, 1)  # channels-last for the pointwise MLP
        branch = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(branch)))))
        branch = branch.permute(0, 3, 1, 2)
        if self.training and self.drop_path >= 1.0:
            return x
        if self.training and self.drop_path > 0.0:
            keep = 1.0 - self.drop_path
            mask = branch.new_empty((branch.shape[0], 1, 1, 1)).bernoulli_(keep)
            branch = branch * mask / keep
        return x + branch


class ConvNeXtV2Heads(nn.Module):
    """ConvNeXt-V2 backbone (4 stages) + global pooling + the keypoint/pose/expression heads."""

    def __init__(
        self,
        depths: tuple[int, ...] = TINY_DEPTHS,
        dims: tuple[int, ...] = TINY_DIMS,
        num_kp: int = NUM_KEYPOINTS,
        num_bins: int = NUM_POSE_BINS,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4),
            ChannelsFirstLayerNorm(dims[0]),
        )
        self.downsample_layers = nn.ModuleList([stem])
        for stage in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(
                    ChannelsFirstLayerNorm(dims[stage]),
                    nn.Conv2d(dims[stage], dims[stage + 1], kernel_size=2, stride=2),
                )
            )
        total = sum(depths)
        rates = [drop_path_rate * index / max(total - 1, 1) for index in range(total)]
        self.stages = nn.ModuleList()
        first = 0
        for depth, dim in zip(depths, dims, strict=True):
            blocks = [ConvNeXtBlock(dim, rates[first + index]) for index in range(depth)]
            self.stages.append(nn.Sequential(*blocks))
            first += depth
        width = dims[-1]
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.fc_kp = nn.Linear(width, 3 * num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        pooled = self.norm(x.mean(dim=(-2, -1)))
        return {
            "pitch": self.fc_pitch(pooled),
            "yaw": self.fc_yaw(pooled),
            "roll": self.fc_roll(pooled),
            "t": self.fc_t(pooled),
            "exp": self.fc_exp(pooled),
            "scale": self.fc_scale(pooled),
            "kp": self.fc_kp(pooled),
        }


class MotionExtractor(nn.Module):
    """M(image) -> {pitch, yaw, roll: B×66 logits, t: B×3, exp: B×63, scale: B×1, kp: B×63}.

    `image` is B×3×256×256 RGB in [0, 1]. Must run in fp32: its activations overflow fp16.
    """

    def __init__(self, num_kp: int = NUM_KEYPOINTS, num_bins: int = NUM_POSE_BINS) -> None:
        super().__init__()
        self.detector = ConvNeXtV2Heads(num_kp=num_kp, num_bins=num_bins)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"MotionExtractor expects B×3×H×W images, got {tuple(image.shape)}")
        return self.detector(image)
