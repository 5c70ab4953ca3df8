"""M (ConvNeXt-V2-tiny motion extractor) and the S/R MLPs: layout, shapes, building blocks."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lpstream.liveportrait.networks.motion_extractor import (
    ChannelsFirstLayerNorm,
    ConvNeXtBlock,
    GlobalResponseNorm,
    MotionExtractor,
)
from lpstream.liveportrait.networks.stitching_retargeting import (
    KeypointMLP,
    eye_retargeting_network,
    lip_retargeting_network,
    stitching_network,
)
from lpstream.liveportrait.testing import random_networks
from tests.conftest import shared_file

M_FILE = "liveportrait/base_models/motion_extractor.pth"
S_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"


def layout_of(module: torch.nn.Module) -> list[list[object]]:
    return [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
        for key, value in module.state_dict().items()
    ]


@pytest.fixture(scope="module")
def official_layout() -> dict:
    return json.loads(shared_file("liveportrait/checkpoint_layout.json").read_text())


@pytest.fixture(scope="module")
def motion_extractor() -> MotionExtractor:
    torch.set_num_threads(1)
    return random_networks(seed=1)["motion_extractor"]


def test_motion_extractor_state_dict_matches_official_layout(official_layout: dict) -> None:
    with torch.device("meta"):
        module = MotionExtractor()
    assert layout_of(module) == official_layout[M_FILE]


@pytest.mark.parametrize(
    ("factory", "sub_dict"),
    [
        (stitching_network, "retarget_shoulder"),
        (lip_retargeting_network, "retarget_mouth"),
        (eye_retargeting_network, "retarget_eye"),
    ],
)
def test_mlp_state_dicts_match_official_layout(official_layout: dict, factory, sub_dict) -> None:
    assert layout_of(factory()) == official_layout[S_FILE][sub_dict]


def test_motion_extractor_outputs_have_spec_shapes(motion_extractor: MotionExtractor) -> None:
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = motion_extractor(images)
        single = motion_extractor(images[1:])
    expected = {"pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63, "scale": 1, "kp": 63}
    assert {key: tuple(value.shape) for key, value in batched.items()} == {
        key: (2, width) for key, width in expected.items()
    }
    for key, value in batched.items():
        assert torch.isfinite(value).all(), key
        # Each sample is processed independently: batching must not change results.
        torch.testing.assert_close(value[1:], single[key], atol=1e-4, rtol=1e-4)
    # Different images give different motion (the network is not ignoring its input).
    assert not torch.allclose(batched["kp"][0], batched["kp"][1])


def test_motion_extractor_rejects_non_image_input(motion_extractor: MotionExtractor) -> None:
    with pytest.raises(ValueError, match="B×3×H×W"):
        motion_extractor(torch.rand(3, 256, 256))


def test_channels_first_layer_norm_equals_layer_norm_over_channels() -> None:
    norm = ChannelsFirstLayerNorm(8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 8, 5, 4)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, 1e-6)
    torch.testing.assert_close(norm(x), expected.permute(0, 3, 1, 2), atol=1e-5, rtol=1e-5)


def test_global_response_norm_closed_form() -> None:
    grn = GlobalResponseNorm(2)
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, :, 0] = torch.tensor([3.0, 4.0])  # channel 0 has L2 energy 5
    x[0, 0, :, 1] = torch.tensor([0.0, 1.0])  # channel 1 has L2 energy 1
    assert torch.equal(grn(x), x)  # zero-initialised gains: identity
    with torch.no_grad():
        grn.gamma.fill_(1.0)
        grn.beta.fill_(0.5)
    # energies (5, 1), mean 3: relative (5/3, 1/3); out = x·relative + 0.5 + x
    relative = torch.tensor([5.0 / 3.0, 1.0 / 3.0])
    torch.testing.assert_close(grn(x), x * relative + 0.5 + x, atol=1e-5, rtol=1e-5)


def test_drop_path_is_only_active_in_training() -> None:
    torch.manual_seed(0)
    block = ConvNeXtBlock(8, drop_path=1.0)
    with torch.no_grad():
        block.pwconv2.bias.fill_(1.0)
    x = torch.randn(1, 8, 6, 6)
    block.train()
    assert torch.equal(block(x), x)  # the whole residual branch is dropped
    block.eval()
    assert not torch.allclose(block(x), x)


def test_mlp_rejects_wrong_input_width() -> None:
    with pytest.raises(ValueError, match="126"):
        stitching_network()(torch.zeros(1, 125))
    with pytest.raises(ValueError):
        KeypointMLP([5])


def test_mlp_is_linear_relu_stack() -> None:
    mlp = KeypointMLP([2, 3, 1])
    with torch.no_grad():
        mlp.mlp[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        mlp.mlp[0].bias.zero_()
        mlp.mlp[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        mlp.mlp[2].bias.fill_(0.5)
    # hidden relu([2, -3, -(2 - 3)]) = [2, 0, 1]; output 2 + 0 + 1 + 0.5
    assert mlp(torch.tensor([[2.0, -3.0]])).item() == pytest.approx(3.5)
