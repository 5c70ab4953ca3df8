"""Where and in which precision the LivePortrait networks run, decided once at construction.

On CUDA, F, W and G (nearly all the FLOPs) run in fp16; M stays fp32 because its activations
overflow fp16 (see `networks.motion_extractor`), and the tiny MLPs stay fp32 because they cost
nothing. On CPU everything is fp32: CPU fp16 convolutions are slower, not faster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lpstream.errors import LpstreamError
from lpstream.liveportrait.weights import LivePortraitNetworks

RENDER_NETWORKS = ("appearance_feature_extractor", "warping_module", "spade_generator")
"""Run in `DevicePlan.render_dtype`."""
MOTION_NETWORKS = ("motion_extractor", "stitching", "retarget_eye", "retarget_lip")
"""Always fp32."""


class DeviceError(LpstreamError):
    """The requested device is unknown or not available on this machine."""


@dataclass(frozen=True)
class DevicePlan:
    """A device and the dtypes each group of networks uses on it."""

    device: torch.device
    """Where every network and tensor lives."""
    render_dtype: torch.dtype
    """dtype of F, W and G (fp16 on CUDA, fp32 on CPU)."""
    motion_dtype: torch.dtype = torch.float32
    """dtype of M and the stitching/retargeting MLPs (always fp32)."""


def choose_device(device: str | torch.device = "auto") -> DevicePlan:
    """`auto`: CUDA with fp16 rendering when a GPU is visible, else CPU fp32."""
    name = str(device).lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} requested but torch sees no CUDA GPU; use --device cpu"
            )
        return DevicePlan(resolved, render_dtype=torch.float16)
    if resolved.type == "cpu":
        return DevicePlan(resolved, render_dtype=torch.float32)
    raise DeviceError(f"unsupported device {device!r}; use auto, cpu or cuda[:N]")


def place_networks(networks: LivePortraitNetworks, plan: DevicePlan) -> LivePortraitNetworks:
    """The networks moved to `plan.device` in their planned dtypes (modules move in place)."""
    placed = {}
    for name in RENDER_NETWORKS:
        placed[name] = getattr(networks, name).to(plan.device, plan.render_dtype)
    for name in MOTION_NETWORKS:
        placed[name] = getattr(networks, name).to(plan.device, plan.motion_dtype)
    return replace(networks, **placed)
