"""Dense motion network: sparse keypoint motion → dense 3-D deformation and occlusion map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lpstream.liveportrait.networks.blocks import (
    Hourglass3d,
    keypoint_gaussians,
    make_coordinate_grid,
)

KEYPOINT_VARIANCE = 0.01
"""Variance of the Gaussian heatmaps drawn around each keypoint (normalised coordinates)."""


class DenseMotionNetwork(nn.Module):
    """Predicts where every voxel of the driving frame samples the source feature volume.

    One candidate motion per keypoint (translate by `kp_source - kp_driving`) plus the identity;
    the source features warped by each candidate and the keypoint heatmap differences feed a
    3-D hourglass whose softmax mask blends the candidates into one deformation field. A 2-D
    conv on the flattened hourglass output gives the occlusion map.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = 21,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
        estimate_occlusion_map: bool = True,
    ) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass3d(
            block_expansion=block_expansion,
            in_features=(num_kp + 1) * (compress + 1),
            num_blocks=num_blocks,
            max_features=max_features,
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion: nn.Conv2d | None = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )

    def sparse_motions(
        self, identity: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        """`(B, K+1, D, H, W, 3)` sampling grids: identity, then one per keypoint."""
        batch = kp_driving.shape[0]
        per_keypoint = (
            identity[None, None] - kp_driving[:, :, None, None, None, :]
        ) + kp_source[:, :, None, None, None, :]
        background = identity[None, None].expand(batch, 1, *identity.shape)
        return torch.cat([background, per_keypoint], dim=1)

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        batch, _, depth, height, width = feature.shape
        motions_count = self.num_kp + 1
        compressed = F.relu(self.norm(self.compress(feature)))  # (B, c, D, H, W)
        channels = compressed.shape[1]

        identity = make_coordinate_grid(depth, height, width, feature.dtype, feature.device)
        motions = self.sparse_motions(identity, kp_driving, kp_source)

        # Warp the compressed features once per candidate motion (one batched grid_sample).
        repeated = compressed.unsqueeze(1).expand(
            batch, motions_count, channels, depth, height, width
        )
        deformed = F.grid_sample(
            repeated.reshape(batch * motions_count, channels, depth, height, width),
            motions.reshape(batch * motions_count, depth, height, width, 3),
            align_corners=False,
        ).view(batch, motions_count, channels, depth, height, width)

        heatmap = keypoint_gaussians(kp_driving, identity, KEYPOINT_VARIANCE) - keypoint_gaussians(
            kp_source, identity, KEYPOINT_VARIANCE
        )
        background = torch.zeros_like(heatmap[:, :1])
        heatmap = torch.cat([background, heatmap], dim=1).unsqueeze(2)  # (B, K+1, 1, D, H, W)

        volume = torch.cat([heatmap, deformed], dim=2).view(batch, -1, depth, height, width)
        prediction = self.hourglass(volume)

        mask = F.softmax(self.mask(prediction), dim=1)  # (B, K+1, D, H, W)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)  # (B, D, H, W, 3)
        result = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            flat = prediction.reshape(batch, -1, height, width)
            result["occlusion_map"] = torch.sigmoid(self.occlusion(flat))
        return result
