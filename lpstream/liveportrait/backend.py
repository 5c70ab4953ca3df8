"""The LivePortrait backend, described: needs the official weights, codes keypoint motion.

Importing this module is cheap (no torch): the weights check and the networks load only when
asked for, so the registry can list every backend without paying for this one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from lpstream.backend import AvatarRenderer, BackendOptions, MotionSender
from lpstream.errors import BackendError
from lpstream.protocol.profiles import KEYPOINTS, CodecProfile

WEIGHTS_ADVICE = (
    "`python -m lpstream weights download` fetches them; --weights or $LPSTREAM_WEIGHTS "
    "points at another folder"
)


class LivePortraitBackend:
    """Backend: the official LivePortrait networks (sender runs M, renderer F, W, G, S)."""

    name = "liveportrait"
    aliases: tuple[str, ...] = ()
    codec_profile: CodecProfile = KEYPOINTS
    runs_in_browser = False  # its networks need a GPU-class machine, not a page

    def unavailable_reason(self, options: BackendOptions) -> str | None:
        """Why the weights folder cannot be used (missing, incomplete, wrong layout), or None."""
        try:
            from lpstream.liveportrait.weights import check_weights, resolve_weights_dir
        except ImportError as error:
            return f"LivePortrait code unavailable ({error})"
        root = resolve_weights_dir(options.weights)
        if not root.is_dir():
            return (
                f"no complete LivePortrait weights: folder {root} does not exist ({WEIGHTS_ADVICE})"
            )
        problems = check_weights(root)
        if not problems:
            return None
        summary = "; ".join(str(problem) for problem in problems[:2])
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        return f"no complete LivePortrait weights in {root}: {summary}{more}"

    def create_sender(self, options: BackendOptions) -> MotionSender:
        sender: MotionSender = _stages("sender").LivePortraitSender(
            _networks(options), device=options.device
        )
        return sender

    def create_renderer(self, options: BackendOptions) -> AvatarRenderer:
        renderer: AvatarRenderer = _stages("renderer").LivePortraitRenderer(
            _networks(options), device=options.device
        )
        return renderer

    def browser_source(self, image_rgb: np.ndarray) -> dict[str, object]:
        raise BackendError("the LivePortrait backend renders on the node, not in a browser")


def _stages(module: str) -> ModuleType:
    try:
        return importlib.import_module(f"lpstream.liveportrait.{module}")
    except ModuleNotFoundError as error:
        raise BackendError(
            f"the LivePortrait backend is not available in this installation ({error}); "
            "use --backend meshwarp"
        ) from error


def _networks(options: BackendOptions) -> object:
    """The one shared copy of the networks for these options (see `shared_networks`)."""
    device_module = _stages("device")
    # An impossible --device (cuda on a CPU-only machine) fails now, not after seconds of
    # weight loading.
    plan = device_module.choose_device(options.device)
    return _stages("weights").shared_networks(options.weights, str(plan.device))


BACKEND = LivePortraitBackend()
