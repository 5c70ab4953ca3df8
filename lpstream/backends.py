"""Pick a backend: LivePortrait when its weights are present, else the built-in mesh warp.

The rest of the system only sees the (MotionSender, AvatarRenderer) pair returned here.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from lpstream.backend import AvatarRenderer, MotionSender
from lpstream.errors import LpstreamError

logger = logging.getLogger(__name__)

MESHWARP_NAMES = ("meshwarp", "builtin")
LIVEPORTRAIT_NAME = "liveportrait"
BACKEND_NAMES = ("auto", *MESHWARP_NAMES, LIVEPORTRAIT_NAME)


class BackendError(LpstreamError):
    """An unknown backend name, or a backend that cannot run here."""


@dataclass(frozen=True)
class BackendChoice:
    """Which backend `auto` resolves to, and why (logged and shown to the user)."""

    name: str
    reason: str


def choose_backend(name: str = "auto", weights: Path | None = None) -> BackendChoice:
    """Resolve a backend name (see BACKEND_NAMES) without building anything."""
    name = name.lower()
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name in MESHWARP_NAMES:
        return BackendChoice("meshwarp", f"requested --backend {name}")
    if name == LIVEPORTRAIT_NAME:
        return BackendChoice(LIVEPORTRAIT_NAME, "requested --backend liveportrait")
    try:
        from lpstream.liveportrait.weights import check_weights, resolve_weights_dir
    except ImportError as error:
        return BackendChoice("meshwarp", f"LivePortrait code unavailable ({error})")
    root = resolve_weights_dir(weights)
    problems = check_weights(root)
    if problems:
        summary = "; ".join(str(problem) for problem in problems[:2])
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        return BackendChoice(
            "meshwarp", f"no complete LivePortrait weights in {root}: {summary}{more}"
        )
    return BackendChoice(LIVEPORTRAIT_NAME, f"complete LivePortrait weights found in {root}")


def _meshwarp() -> tuple[MotionSender, AvatarRenderer]:
    from lpstream.meshwarp import MeshwarpRenderer, MeshwarpSender

    return MeshwarpSender(), MeshwarpRenderer()


def _liveportrait(weights: Path | None, device: str) -> tuple[MotionSender, AvatarRenderer]:
    try:
        module = importlib.import_module("lpstream.liveportrait.backend")
    except ModuleNotFoundError as error:
        raise BackendError(
            f"the LivePortrait backend is not available in this installation ({error}); "
            "use --backend meshwarp"
        ) from error
    from lpstream.liveportrait.weights import load_networks

    # Networks load on the CPU; the backend's own device plan moves them where they run.
    networks = load_networks(weights, device="cpu")
    return module.LivePortraitSender(networks, device=device), module.LivePortraitRenderer(
        networks, device=device
    )


def build_backend(
    choice: BackendChoice, weights: Path | None = None, device: str = "auto"
) -> tuple[MotionSender, AvatarRenderer]:
    """(sender, renderer) of an already chosen backend."""
    if choice.name == LIVEPORTRAIT_NAME:
        return _liveportrait(weights, device)
    return _meshwarp()


def create_backend(
    name: str = "auto", weights: Path | None = None, device: str = "auto"
) -> tuple[MotionSender, AvatarRenderer]:
    """(sender, renderer) of the chosen backend; logs which one and why."""
    choice = choose_backend(name, weights)
    logger.info("backend: %s (%s)", choice.name, choice.reason)
    return build_backend(choice, weights, device)
