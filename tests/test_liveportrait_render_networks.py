"""F, W (+ dense motion) and G: official checkpoint layout, shapes, spectral norm, warping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lpstream.liveportrait.networks import (
    AppearanceFeatureExtractor,
    SPADEDecoder,
    WarpingNetwork,
)
from lpstream.liveportrait.networks.blocks import SpectralNormConv2d, make_coordinate_grid
from lpstream.liveportrait.networks.fused import FusedWarpDecode, UpsampledConv
from tests.conftest import shared_file

LAYOUT_FILES = {
    "appearance_feature_extractor": "liveportrait/base_models/appearance_feature_extractor.pth",
    "warping_module": "liveportrait/base_models/warping_module.pth",
    "spade_generator": "liveportrait/base_models/spade_generator.pth",
}
BUILDERS = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # The CPU is shared with other test runs; one thread keeps the suite polite and repeatable.
    torch.set_num_threads(1)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Give BatchNorm statistics and spectral-norm vectors non-trivial random values.

    Fresh modules have running_mean 0 / running_var 1, which would hide a wrong use of the
    running statistics; weights keep torch's default init (already random).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith(("weight_u", "weight_v")):
                tensor.copy_(F.normalize(torch.randn(tensor.shape, generator=generator), dim=0))
    return module.eval()


def official_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    layout = json.loads(shared_file("liveportrait/checkpoint_layout.json").read_text())
    return [(key, tuple(shape)) for key, shape, _dtype in layout[LAYOUT_FILES[name]]]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_state_dict_matches_official_layout_key_for_key(name: str) -> None:
    ours = [(key, tuple(t.shape)) for key, t in BUILDERS[name]().state_dict().items()]
    assert ours == official_layout(name)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_layout_shaped_state_dict_loads_strictly(name: str) -> None:
    """A state dict built only from the JSON layout (as an official file would be) loads."""
    generator = torch.Generator().manual_seed(3)
    state = {
        key: torch.randn(shape, generator=generator) if shape or "num_batches" not in key
        else torch.tensor(7, dtype=torch.int64)
        for key, shape in official_layout(name)
    }
    module = BUILDERS[name]()
    module.load_state_dict(state, strict=True)
    loaded = module.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_save_load_round_trip_reproduces_outputs(tmp_path: Path) -> None:
    source = randomize_(AppearanceFeatureExtractor(), seed=1)
    path = tmp_path / "appearance_feature_extractor.pth"
    torch.save(source.state_dict(), path)
    restored = AppearanceFeatureExtractor()
    restored.load_state_dict(torch.load(path, weights_only=True), strict=True)
    restored.eval()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.equal(source(image), restored(image))


def test_appearance_feature_extractor_full_size_shape_and_eval_statistics() -> None:
    extractor = randomize_(AppearanceFeatureExtractor(), seed=4)
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        volume = extractor(image)
        assert volume.shape == (1, 32, 16, 64, 64)
        assert torch.isfinite(volume).all()
        # Eval BatchNorm uses running statistics: a second image in the batch must not change
        # the first image's features (batch statistics would couple them).
        pair = extractor(torch.cat([image, torch.rand(1, 3, 256, 256)]))
    torch.testing.assert_close(pair[:1], volume, rtol=1e-4, atol=1e-5)


def test_reshape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="reshape_channel"):
        AppearanceFeatureExtractor(reshape_channel=30)


def _keypoints(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 21, 3, generator=generator) * 1.6 - 0.8


def test_warping_full_size_identity_keypoints_give_identity_deformation() -> None:
    warper = randomize_(WarpingNetwork(), seed=6)
    generator = torch.Generator().manual_seed(7)
    feature = torch.randn(1, 32, 16, 64, 64, generator=generator)
    keypoints = _keypoints(8)
    with torch.inference_mode():
        result = warper(feature, kp_driving=keypoints, kp_source=keypoints)
    assert result["deformation"].shape == (1, 16, 64, 64, 3)
    assert result["occlusion_map"].shape == (1, 1, 64, 64)
    assert result["out"].shape == (1, 256, 64, 64)
    # Every candidate motion is the identity, and the softmax weights sum to one.
    identity = make_coordinate_grid(16, 64, 64, torch.float32, torch.device("cpu"))
    torch.testing.assert_close(result["deformation"][0], identity, rtol=0, atol=1e-5)
    occlusion = result["occlusion_map"]
    assert bool(((occlusion > 0) & (occlusion < 1)).all())


def test_uniform_keypoint_shift_moves_every_voxel_along_the_shift() -> None:
    """Driving = source + δ makes every keypoint motion `identity − δ`; the background motion
    is the identity, so each voxel's displacement is −δ times (1 − background weight)."""
    warper = randomize_(WarpingNetwork(), seed=9)
    feature = torch.randn(1, 32, 16, 32, 32, generator=torch.Generator().manual_seed(10))
    kp_source = _keypoints(11)
    shift = torch.tensor([0.1, -0.05, 0.02])
    with torch.inference_mode():
        motion = warper.dense_motion_network(feature, kp_source + shift, kp_source)
    identity = make_coordinate_grid(16, 32, 32, torch.float32, torch.device("cpu"))
    displacement = motion["deformation"][0] - identity
    expected = -shift * (1 - motion["mask"][0, 0]).unsqueeze(-1)
    torch.testing.assert_close(displacement, expected, rtol=0, atol=1e-5)
    assert float(displacement.abs().max()) > 1e-3, "the shift should move the field"
    torch.testing.assert_close(motion["mask"].sum(1), torch.ones(1, 16, 32, 32))


def test_coordinate_grid_convention_x_right_y_down_z_in() -> None:
    grid = make_coordinate_grid(3, 4, 5, torch.float32, torch.device("cpu"))
    assert grid.shape == (3, 4, 5, 3)
    assert grid[0, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    assert grid[2, 3, 4].tolist() == [1.0, 1.0, 1.0]
    assert grid[0, 0, 1, 0].item() == pytest.approx(-0.5)  # x grows along width
    assert grid[0, 1, 0, 1].item() == pytest.approx(-1 / 3)  # y grows along height
    assert grid[1, 0, 0, 2].item() == pytest.approx(0.0)  # z grows along depth


def test_warping_is_deterministic() -> None:
    warper = randomize_(WarpingNetwork(), seed=12)
    feature = torch.randn(1, 32, 16, 32, 32, generator=torch.Generator().manual_seed(13))
    kp_source, kp_driving = _keypoints(14), _keypoints(15)
    with torch.inference_mode():
        first = warper(feature, kp_driving, kp_source)
        second = warper(feature, kp_driving, kp_source)
    for key in ("deformation", "occlusion_map", "out"):
        assert torch.equal(first[key], second[key])
    assert not torch.allclose(first["deformation"][0], make_coordinate_grid(
        16, 32, 32, torch.float32, torch.device("cpu")), atol=1e-3)


def test_spade_decoder_is_fully_convolutional_sigmoid_image() -> None:
    decoder = randomize_(SPADEDecoder(), seed=16)
    feature = torch.randn(1, 256, 16, 16, generator=torch.Generator().manual_seed(17)) * 0.1
    with torch.inference_mode():
        image = decoder(feature)
        again = decoder(feature)
    assert image.shape == (1, 3, 128, 128)  # ×2 ×2 upsampling and PixelShuffle(2)
    assert bool(((image >= 0) & (image <= 1)).all())
    assert torch.equal(image, again)


def test_spectral_norm_conv_matches_torch_spectral_norm_in_eval() -> None:
    ours = randomize_(SpectralNormConv2d(8, 6, kernel_size=3), seed=18)
    reference = nn.utils.spectral_norm(nn.Conv2d(8, 6, kernel_size=3, padding=1))
    reference.load_state_dict(ours.state_dict(), strict=True)
    reference.eval()
    x = torch.randn(2, 8, 10, 10, generator=torch.Generator().manual_seed(19))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)


def test_spectral_norm_uses_stored_vectors_without_power_iteration() -> None:
    conv = randomize_(SpectralNormConv2d(8, 6, kernel_size=3), seed=20)
    u_before, v_before = conv.weight_u.clone(), conv.weight_v.clone()
    x = torch.randn(1, 8, 10, 10, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        first = conv(x)
        second = conv(x)
        assert torch.equal(conv.weight_u, u_before) and torch.equal(conv.weight_v, v_before)
        assert torch.equal(first, second)
        # σ = uᵀ W v from the stored vectors: doubling u doubles σ and halves the conv part.
        manual_sigma = torch.dot(u_before, conv.weight_orig.reshape(6, -1) @ v_before)
        expected = F.conv2d(x, conv.weight_orig / manual_sigma, conv.bias, padding=1)
        torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-6)
        conv.weight_u.mul_(2.0)
        halved = conv(x)
    bias = conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(halved - bias, (first - bias) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("three_d", [False, True])
def test_upsampled_conv_equals_conv_of_nearest_upsampled_input(factor: int, three_d: bool) -> None:
    generator = torch.Generator().manual_seed(22)
    kernel = (3, 3, 3) if three_d else (3, 3)
    weight = torch.randn(6, 5, *kernel, generator=generator)
    bias = torch.randn(6, generator=generator)
    x = torch.randn(1, 5, *((4,) if three_d else ()), 7, 9, generator=generator)
    scale = (1.0, factor, factor) if three_d else (factor, factor)
    upsampled = F.interpolate(x, scale_factor=scale, mode="nearest")
    conv = F.conv3d if three_d else F.conv2d
    expected = conv(upsampled, weight, bias, padding=1)
    got = UpsampledConv(weight, bias, factor)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_fused_warp_decode_matches_the_official_structure() -> None:
    warper = randomize_(WarpingNetwork(), seed=23)
    decoder = randomize_(SPADEDecoder(), seed=24)
    fused = FusedWarpDecode(warper, decoder)
    generator = torch.Generator().manual_seed(25)
    feature = 0.1 * torch.randn(1, 32, 16, 32, 32, generator=generator)
    kp_source = _keypoints(26)
    kp_driving = kp_source + 0.05 * torch.randn(1, 21, 3, generator=generator)
    logits: dict[str, torch.Tensor] = {}

    def keep(name: str) -> object:
        return lambda _module, _inputs, output: logits.__setitem__(name, output)

    decoder.conv_img.register_forward_hook(keep("official"))
    fused.spade_generator.conv_img.register_forward_hook(keep("fused"))
    with torch.inference_mode():
        expected_w = warper(feature, kp_driving, kp_source)
        got_w = fused.warping_module(feature, kp_driving, kp_source)
        for key in ("deformation", "occlusion_map", "out"):
            torch.testing.assert_close(got_w[key], expected_w[key], rtol=1e-4, atol=1e-5)
        small = expected_w["out"][..., :16, :16]
        expected = decoder(small)
        got = fused.spade_generator(small)
    assert got.shape == expected.shape == (1, 3, 128, 128)
    # Default-initialised SPADE blocks grow activations to logits of several hundred, where
    # float rounding alone is ~1e-3 absolute (~1e-5 relative); a wrong term would be O(1).
    scale = float(logits["official"].abs().max())
    error = float((logits["fused"] - logits["official"]).abs().max())
    assert error <= 1e-4 * scale, (error, scale)
    assert float((got - expected).abs().mean()) < 1e-4
