"""S, R_lip, R_eye: the small MLPs that correct driving keypoints.

Each is Linear layers with ReLU between; the state-dict keys are `mlp.N.weight/bias` as in
the official `stitching_retargeting_module.pth` (N counts ReLUs too, so weights sit at even N).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

STITCHING_SIZES = (126, 128, 128, 64, 65)
"""x_s and x_d flattened (2·63) -> 63 keypoint deltas + (t_x, t_y)."""
LIP_RETARGETING_SIZES = (65, 128, 128, 64, 63)
"""x_s (63) + [lip_ratio_source, lip_ratio_target] -> 63 keypoint deltas."""
EYE_RETARGETING_SIZES = (66, 256, 256, 128, 128, 64, 63)
"""x_s (63) + [eye_ratio_source_L, eye_ratio_source_R, eye_ratio_target] -> 63 deltas."""


class KeypointMLP(nn.Module):
    """A plain MLP: Linear (ReLU Linear)*; `sizes` lists every layer width, input first."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {sizes}")
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(pairwise(sizes)):
            if index > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out))
        self.mlp = nn.Sequential(*layers)
        self.input_size = int(sizes[0])
        self.output_size = int(sizes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size:
            raise ValueError(f"expected {self.input_size} input features, got {x.shape[-1]}")
        return self.mlp(x)


def stitching_network() -> KeypointMLP:
    """S: 126 → 128 → 128 → 64 → 65."""
    return KeypointMLP(STITCHING_SIZES)


def lip_retargeting_network() -> KeypointMLP:
    """R_lip: 65 → 128 → 128 → 64 → 63."""
    return KeypointMLP(LIP_RETARGETING_SIZES)


def eye_retargeting_network() -> KeypointMLP:
    """R_eye: 66 → 256 → 256 → 128 → 128 → 64 → 63."""
    return KeypointMLP(EYE_RETARGETING_SIZES)
