"""LivePortrait's networks as plain `nn.Module`s that load the official state dicts strictly."""

from lpstream.liveportrait.networks.appearance_feature_extractor import AppearanceFeatureExtractor
from lpstream.liveportrait.networks.dense_motion import DenseMotionNetwork
from lpstream.liveportrait.networks.motion_extractor import MotionExtractor
from lpstream.liveportrait.networks.spade_generator import SPADEDecoder
from lpstream.liveportrait.networks.stitching_retargeting import (
    KeypointMLP,
    eye_retargeting_network,
    lip_retargeting_network,
    stitching_network,
)
from lpstream.liveportrait.networks.warping_network import WarpingNetwork

__all__ = [
    "AppearanceFeatureExtractor",
    "DenseMotionNetwork",
    "KeypointMLP",
    "MotionExtractor",
    "SPADEDecoder",
    "WarpingNetwork",
    "eye_retargeting_network",
    "lip_retargeting_network",
    "stitching_network",
]
