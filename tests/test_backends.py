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
