"""Pick a backend: LivePortrait when its weights are present, else the built-in mesh warp.

The rest of the system only sees the (MotionSender, AvatarRenderer) pair returned here.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    if not root.is_dir():
        return BackendChoice(
            "meshwarp", f"no complete LivePortrait weights: folder {root} does not exist"
        )
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
    from lpstream.liveportrait.device import choose_device

    # An impossible --device (cuda on a CPU-only machine) fails now, not after seconds of
    # weight loading.
    plan = choose_device(device)
    networks = shared_networks(weights, str(plan.device))
    return module.LivePortraitSender(networks, device=device), module.LivePortraitRenderer(
        networks, device=device
    )


_networks_lock = threading.Lock()
_networks_cache: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}
"""(weights folder, device) -> (file signature, loaded LivePortraitNetworks)."""


def shared_networks(weights: Path | None, device: str) -> Any:
    """The LivePortrait networks of a weights folder, loaded once per process and device.

    The call server creates a sender per participant and a renderer per viewed participant,
    each through `create_backend`; loading ~500 MB of weights for every one of them cost
    seconds per join and half a gigabyte of RAM per stage. Inference never modifies the
    networks, so every stage shares one copy. A folder whose files changed (size or mtime) is
    loaded again.
    """
    from lpstream.liveportrait.weights import (
        REQUIRED_FILES,
        load_networks,
        resolve_weights_dir,
    )

    root = resolve_weights_dir(weights).resolve()
    signature = tuple(
        (stat.st_size, stat.st_mtime_ns) if (stat := _stat(root / relative)) else None
        for relative in REQUIRED_FILES
    )
    key = (str(root), device)
    # Held while loading, so stages created at the same moment wait for one load.
    with _networks_lock:
        cached = _networks_cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        # Networks load on the CPU; the backend's own device plan moves them where they run.
        networks = load_networks(root, device="cpu")
        # One folder at a time: a process serves from one weights folder, and stale entries
        # (tests, a replaced folder) would pin half a gigabyte each.
        _networks_cache.clear()
        _networks_cache[key] = (signature, networks)
        logger.info("loaded LivePortrait networks from %s", root)
        return networks


def _stat(path: Path) -> Any:
    try:
        return path.stat()
    except OSError:
        return None


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
    global _last_logged_choice
    choice = choose_backend(name, weights)
    # The call server creates a backend per participant stage; say the choice once, and
    # again only when it changes (e.g. weights appeared or broke meanwhile).
    level = logging.DEBUG if choice == _last_logged_choice else logging.INFO
    logger.log(level, "backend: %s (%s)", choice.name, choice.reason)
    _last_logged_choice = choice
    return build_backend(choice, weights, device)


_last_logged_choice: BackendChoice | None = None
