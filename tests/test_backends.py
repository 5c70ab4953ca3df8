"""Backend selection: `auto` takes LivePortrait only when complete weights are present."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lpstream.backend import AvatarRenderer, MotionSender
from lpstream.backends import BackendError, choose_backend, create_backend


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lpstream.liveportrait.testing import save_random_weights

    return save_random_weights(tmp_path_factory.mktemp("lp_weights"), seed=0)


def test_auto_without_weights_falls_back_to_meshwarp_and_says_why(tmp_path: Path) -> None:
    choice = choose_backend("auto", tmp_path / "nowhere")
    assert choice.name == "meshwarp"
    assert "nowhere" in choice.reason and "does not exist" in choice.reason


def test_auto_with_incomplete_weights_names_the_missing_file(random_weights, tmp_path) -> None:
    partial = tmp_path / "partial"
    source = random_weights / "liveportrait" / "base_models" / "motion_extractor.pth"
    target = partial / "liveportrait" / "base_models" / "motion_extractor.pth"
    target.parent.mkdir(parents=True)
    target.symlink_to(source)
    choice = choose_backend("auto", partial)
    assert choice.name == "meshwarp"
    assert "appearance_feature_extractor.pth: missing file" in choice.reason


def test_auto_with_complete_weights_picks_liveportrait(random_weights) -> None:
    choice = choose_backend("auto", random_weights)
    assert choice.name == "liveportrait" and str(random_weights) in choice.reason


def test_names_and_errors() -> None:
    assert choose_backend("builtin").name == choose_backend("MESHWARP").name == "meshwarp"
    assert choose_backend("liveportrait").name == "liveportrait"
    with pytest.raises(BackendError, match="unknown backend 'bogus'"):
        choose_backend("bogus")


def test_create_backend_logs_the_choice(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lpstream.backends"):
        sender, renderer = create_backend("auto", tmp_path / "none")
    assert "backend: meshwarp (no complete LivePortrait weights" in caplog.text
    assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)
    assert sender.name == renderer.name == "meshwarp"


def test_liveportrait_without_weights_is_a_clear_error(tmp_path) -> None:
    from lpstream.errors import WeightsError

    with pytest.raises(WeightsError, match="does not exist"):
        create_backend("liveportrait", tmp_path / "none", device="cpu")


def test_create_liveportrait_pair(random_weights) -> None:
    sender, renderer = create_backend("auto", random_weights, device="cpu")
    assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)
    assert sender.name == renderer.name == "liveportrait"


def test_auto_names_a_missing_folder_once(tmp_path: Path) -> None:
    reason = choose_backend("auto", tmp_path / "nowhere").reason
    assert reason.count("nowhere") == 1


def test_impossible_device_fails_before_loading_weights(tmp_path) -> None:
    import torch

    from lpstream.liveportrait.device import DeviceError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    # The folder does not exist either: the device error must come first (loading real
    # weights takes seconds, and the user should learn about the device at once).
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        create_backend("liveportrait", tmp_path / "none", device="cuda")


def test_stages_share_one_copy_of_the_networks(random_weights) -> None:
    """The call server creates a sender and renderers per participant; each must not load
    its own ~500 MB of weights (and its own fused W+G copy)."""
    first_sender, first_renderer = create_backend("liveportrait", random_weights, device="cpu")
    second_sender, second_renderer = create_backend("liveportrait", random_weights, device="cpu")
    assert first_sender._motion_extractor is second_sender._motion_extractor
    assert first_renderer._networks.warping_module is second_renderer._networks.warping_module
    assert first_renderer._warp_decode is second_renderer._warp_decode


def test_repeated_identical_choices_are_logged_once(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lpstream.backends"):
        create_backend("auto", tmp_path / "none")  # a choice no earlier test made
        for _ in range(3):  # a call server builds one backend per participant stage
            create_backend("meshwarp", tmp_path)
        create_backend("auto", tmp_path / "none")  # a change is logged again
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines.count("backend: meshwarp (requested --backend meshwarp)") == 1
    assert sum("no complete LivePortrait weights" in line for line in lines) == 2
