"""W: the warping network, f_s + keypoints → warped 2-D feature map for the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lpstream.liveportrait.networks.blocks import SameBlock2d
from lpstream.liveportrait.networks.dense_motion import DenseMotionNetwork


class WarpingNetwork(nn.Module):
    """Warps the 1×32×16×64×64 source volume to the driving keypoints → 1×256×64×64.

    `forward(feature_3d, kp_driving, kp_source)` with keypoints `(B, num_kp, 3)` in the
    normalised [-1, 1]³ grid returns `deformation` (B×16×64×64×3), `occlusion_map`
    (B×1×64×64) and `out` (B×256×64×64). Defaults are the official `models.yaml` values.
    """

    def __init__(
        self,
        num_kp: int = 21,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        estimate_occlusion_map: bool = True,
        dense_motion_params: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        params = {
            "block_expansion": 32,
            "max_features": 1024,
            "num_blocks": 5,
            "reshape_depth": 16,
            "compress": 4,
        }
        params.update(dense_motion_params or {})
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            feature_channel=reshape_channel,
            estimate_occlusion_map=estimate_occlusion_map,
            **params,
        )
        out_features = block_expansion * (2**num_down_blocks)
        self.third = SameBlock2d(max_features, out_features, kernel_size=3, leaky=True)
        self.fourth = nn.Conv2d(out_features, out_features, kernel_size=1)

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        deformation = motion["deformation"]
        warped = F.grid_sample(feature_3d, deformation, align_corners=False)
        batch, channels, depth, height, width = warped.shape
        out = self.fourth(self.third(warped.view(batch, channels * depth, height, width)))
        result = {"deformation": deformation, "out": out}
        if "occlusion_map" in motion:
            result["occlusion_map"] = motion["occlusion_map"]
            result["out"] = out * motion["occlusion_map"]
        return result
