"""Backend registry: names and aliases, `auto` = first backend that can run here, each
backend's codec profile, and stages built from the chosen backend."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lpstream.backend import AvatarRenderer, Backend, BackendOptions, MotionSender
from lpstream.backend_registry import BACKENDS, backend_names, choose_backend
from lpstream.errors import BackendError
from lpstream.liveportrait.backend import BACKEND as LIVEPORTRAIT
from lpstream.meshwarp.backend import BACKEND as MESHWARP
from lpstream.protocol.profiles import KEYPOINTS, LANDMARKS

REGISTRY_LOGGER = "lpstream.backend_registry"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lpstream.liveportrait.testing import save_random_weights

    return save_random_weights(tmp_path_factory.mktemp("lp_weights"), seed=0)


def _options(weights: Path, device: str = "auto") -> BackendOptions:
    return BackendOptions(weights=weights, device=device)


class FakeBackend:
    """A Backend whose availability a test decides."""

    codec_profile = LANDMARKS

    def __init__(self, name: str, problem: str | None, aliases: tuple[str, ...] = ()) -> None:
        self.name, self.aliases, self.problem = name, aliases, problem

    def unavailable_reason(self, options: BackendOptions) -> str | None:
        return self.problem

    def create_sender(self, options: BackendOptions) -> MotionSender:
        raise AssertionError("choosing must not build stages")

    def create_renderer(self, options: BackendOptions) -> AvatarRenderer:
        raise AssertionError("choosing must not build stages")


def test_the_table_lists_liveportrait_first_then_meshwarp() -> None:
    assert BACKENDS == (LIVEPORTRAIT, MESHWARP)
    assert all(isinstance(backend, Backend) for backend in BACKENDS)
    assert backend_names() == ("auto", "liveportrait", "meshwarp", "builtin")


def test_each_backend_names_its_codec_profile() -> None:
    assert LIVEPORTRAIT.codec_profile is KEYPOINTS and LIVEPORTRAIT.aliases == ()
    assert MESHWARP.codec_profile is LANDMARKS and MESHWARP.aliases == ("builtin",)
    assert MESHWARP.unavailable_reason(BackendOptions()) is None


def test_auto_takes_the_first_backend_that_can_run() -> None:
    first = FakeBackend("first", "first needs a GPU")
    second = FakeBackend("second", None, aliases=("two",))
    third = FakeBackend("third", None)
    choice = choose_backend("auto", backends=(first, second, third))
    assert choice.backend is second and choice.name == "second"
    assert choice.reason == "first needs a GPU"  # what ruled the preferred one out
    choice = choose_backend("AUTO", backends=(third, second))
    assert choice.backend is third and "first that can run here of third, second" in choice.reason
    assert backend_names((first, second)) == ("auto", "first", "second", "two")
    assert choose_backend("Two", backends=(first, second)).backend is second


def test_auto_with_nothing_available_names_every_reason() -> None:
    table = (FakeBackend("a", "a is missing X"), FakeBackend("b", "b is missing Y"))
    with pytest.raises(BackendError, match="a is missing X; b is missing Y"):
        choose_backend("auto", backends=table)


def test_a_requested_backend_that_cannot_run_is_chosen_with_its_reason() -> None:
    table = (FakeBackend("picky", "picky needs a GPU"), FakeBackend("easy", None))
    choice = choose_backend("picky", backends=table)
    assert choice.name == "picky"
    assert choice.reason == "requested --backend picky, but picky needs a GPU"


def test_auto_without_weights_falls_back_to_meshwarp_and_says_why(tmp_path: Path) -> None:
    choice = choose_backend("auto", _options(tmp_path / "nowhere"))
    assert choice.backend is MESHWARP
    assert "nowhere" in choice.reason and "does not exist" in choice.reason
    assert "python -m lpstream weights download" in choice.reason  # what to do about it


def test_auto_with_incomplete_weights_names_the_missing_file(random_weights, tmp_path) -> None:
    partial = tmp_path / "partial"
    source = random_weights / "liveportrait" / "base_models" / "motion_extractor.pth"
    target = partial / "liveportrait" / "base_models" / "motion_extractor.pth"
    target.parent.mkdir(parents=True)
    target.symlink_to(source)
    choice = choose_backend("auto", _options(partial))
    assert choice.name == "meshwarp"
    assert "appearance_feature_extractor.pth: missing file" in choice.reason
    assert LIVEPORTRAIT.unavailable_reason(_options(partial)) == choice.reason


def test_auto_with_complete_weights_picks_liveportrait(random_weights) -> None:
    choice = choose_backend("auto", _options(random_weights))
    assert choice.backend is LIVEPORTRAIT and choice.name == "liveportrait"
    assert LIVEPORTRAIT.unavailable_reason(_options(random_weights)) is None


def test_names_and_errors(tmp_path) -> None:
    assert choose_backend("builtin").name == choose_backend("MESHWARP").name == "meshwarp"
    assert choose_backend("builtin").reason == "requested --backend builtin"
    missing = choose_backend("liveportrait", _options(tmp_path / "none"))
    assert missing.name == "liveportrait"
    assert missing.reason.startswith("requested --backend liveportrait, but no complete")
    choices = "choose one of auto, liveportrait, meshwarp, builtin"
    with pytest.raises(BackendError, match=rf"unknown backend 'bogus'; {choices}"):
        choose_backend("bogus")


def test_meshwarp_stages_from_the_choice(tmp_path) -> None:
    options = _options(tmp_path / "none")
    backend = choose_backend("auto", options).backend
    sender, renderer = backend.create_sender(options), backend.create_renderer(options)
    try:
        assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)
        assert not hasattr(sender, "name") and not hasattr(renderer, "name")  # Backend.name
    finally:
        sender.close()
        renderer.close()
    renderer.close()  # closing twice is harmless


def test_liveportrait_without_weights_is_a_clear_error(tmp_path) -> None:
    from lpstream.errors import WeightsError

    with pytest.raises(WeightsError, match="does not exist"):
        LIVEPORTRAIT.create_sender(_options(tmp_path / "none", device="cpu"))


def test_liveportrait_stages_from_the_choice(random_weights) -> None:
    options = _options(random_weights, device="cpu")
    backend = choose_backend("auto", options).backend
    sender, renderer = backend.create_sender(options), backend.create_renderer(options)
    try:
        assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)
    finally:
        sender.close()
        renderer.close()


def test_auto_names_a_missing_folder_once(tmp_path: Path) -> None:
    reason = choose_backend("auto", _options(tmp_path / "nowhere")).reason
    assert reason.count("nowhere") == 1


def test_impossible_device_fails_before_loading_weights(tmp_path) -> None:
    import torch

    from lpstream.liveportrait.device import DeviceError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    # The folder does not exist either: the device error must come first (loading real
    # weights takes seconds, and the user should learn about the device at once).
    options = _options(tmp_path / "none", device="cuda")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        LIVEPORTRAIT.create_sender(options)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        LIVEPORTRAIT.create_renderer(options)


def test_stages_share_one_copy_of_the_networks(random_weights) -> None:
    """The call server creates a sender and renderers per participant; each must not load
    its own ~500 MB of weights (and its own fused W+G copy)."""
    options = _options(random_weights, device="cpu")
    senders = [LIVEPORTRAIT.create_sender(options) for _ in range(2)]
    renderers = [LIVEPORTRAIT.create_renderer(options) for _ in range(2)]
    first_sender, second_sender = senders
    first_renderer, second_renderer = renderers
    assert first_sender._motion_extractor is second_sender._motion_extractor
    assert first_renderer._networks.warping_module is second_renderer._networks.warping_module
    assert first_renderer._warp_decode is second_renderer._warp_decode
    for stage in (*senders, *renderers):
        stage.close()


def test_repeated_identical_choices_are_logged_once(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger=REGISTRY_LOGGER):
        choose_backend("auto", _options(tmp_path / "none"))  # a choice no earlier test made
        for _ in range(3):  # a call server chooses for every participant stage
            choose_backend("meshwarp", _options(tmp_path))
        choose_backend("auto", _options(tmp_path / "none"))  # a change is logged again
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines.count("backend: meshwarp (requested --backend meshwarp)") == 1
    assert sum("no complete LivePortrait weights" in line for line in lines) == 2
