"""Random-initialised weights in the official file layout, for tests and offline tools.

Real LivePortrait weights are ~500 MB and never live in the repository; tests generate a
folder of the same structure from the project's own modules instead. Values are made
plausible rather than left at constructor defaults: BatchNorm statistics are non-trivial
(positive variances), ConvNeXt's zero-initialised GRN gains are perturbed so the GRN path is
exercised, and M's scale head starts near LivePortrait's real range so keypoints do not
collapse onto one point; its expression and translation heads are damped towards the real
ranges.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lpstream.liveportrait.networks.motion_extractor import GlobalResponseNorm, MotionExtractor
from lpstream.liveportrait.weights import (
    SINGLE_NETWORK_FILES,
    STITCHING_FILE,
    STITCHING_SUB_DICTS,
    LivePortraitNetworks,
    build_networks,
)

TYPICAL_SCALE = 1.4
"""Middle of the real `scale` range (1.10-1.69 on real faces)."""


def make_plausible(module: nn.Module, generator: torch.Generator) -> None:
    """Give default-initialised buffers and zero parameters values a trained network might have."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_var is not None:
            shape = layer.running_var.shape
            layer.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            layer.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
        elif isinstance(layer, GlobalResponseNorm):
            layer.gamma.copy_(0.1 * torch.randn(layer.gamma.shape, generator=generator))
            layer.beta.copy_(0.1 * torch.randn(layer.beta.shape, generator=generator))
        elif isinstance(layer, MotionExtractor):
            heads = layer.detector
            heads.fc_scale.weight.mul_(0.1)
            heads.fc_scale.bias.fill_(TYPICAL_SCALE)
            heads.fc_t.weight.mul_(0.1)
            heads.fc_exp.weight.mul_(0.05)
            heads.fc_exp.bias.zero_()


def random_networks(seed: int = 0) -> dict[str, nn.Module]:
    """All seven networks, randomly initialised from `seed`, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    # Module constructors draw from the global generator; fork it so callers' RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = build_networks("cpu")
    with torch.no_grad():
        for module in networks.values():
            make_plausible(module, generator)
            module.eval()
    return networks


def random_liveportrait_networks(seed: int = 0) -> LivePortraitNetworks:
    """`random_networks` packaged like `load_networks`'s result (no files involved)."""
    modules = random_networks(seed)
    for module in modules.values():
        module.requires_grad_(False)
    return LivePortraitNetworks(**modules, weights_dir=None)


def save_random_weights(weights_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write random weights for every required file under `weights_dir`; return the folder.

    The files are laid out and keyed exactly as the official ones, so `load_networks` and
    `python -m lpstream weights check` accept them.
    """
    root = Path(weights_dir)
    networks = random_networks(seed)
    for name, relative in SINGLE_NETWORK_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(networks[name].state_dict(), path)
    stitching = {sub: networks[name].state_dict() for name, sub in STITCHING_SUB_DICTS.items()}
    path = root / STITCHING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stitching, path)
    return root
