"""The known backends, in order of preference, and which one runs.

Each backend describes itself in its own folder (`lpstream/<backend>/backend.py`); this table
is the only place that lists them. `auto` takes the first one that can run here, so the order
of `BACKENDS` is the whole rule: LivePortrait when its weights are usable, else the built-in
mesh warp, which always can.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lpstream.backend import Backend, BackendOptions
from lpstream.errors import BackendError
from lpstream.liveportrait.backend import BACKEND as LIVEPORTRAIT
from lpstream.meshwarp.backend import BACKEND as MESHWARP

logger = logging.getLogger(__name__)

AUTO = "auto"
"""The name that asks for the first backend in `BACKENDS` that can run here."""

BACKENDS: tuple[Backend, ...] = (LIVEPORTRAIT, MESHWARP)
"""Every backend, most preferred first."""

DEFAULT_OPTIONS = BackendOptions()

__all__ = [
    "AUTO",
    "BACKENDS",
    "BackendChoice",
    "BackendError",
    "backend_names",
    "choose_backend",
]


@dataclass(frozen=True)
class BackendChoice:
    """The backend a name resolves to here, and why (logged and shown to the user)."""

    backend: Backend
    """The chosen backend; build its stages with `backend.create_sender(options)` etc."""
    reason: str
    """Why this one: requested by name, or what ruled out the preferred ones for `auto`.
    A requested backend that cannot run here says so; creating its stages then fails."""

    @property
    def name(self) -> str:
        return self.backend.name


def backend_names(backends: Sequence[Backend] = BACKENDS) -> tuple[str, ...]:
    """Every name `choose_backend` accepts (for CLI choices): auto, then each backend's name
    and aliases."""
    return (AUTO, *(name for backend in backends for name in (backend.name, *backend.aliases)))


def choose_backend(
    name: str = AUTO,
    options: BackendOptions = DEFAULT_OPTIONS,
    backends: Sequence[Backend] = BACKENDS,
) -> BackendChoice:
    """Resolve a backend name (case-insensitive) without building anything.

    Raises BackendError for an unknown name, or when `auto` finds no backend that can run.
    The choice is logged at INFO the first time and whenever it changes (the call server
    chooses for every stage it creates), else at DEBUG.
    """
    wanted = name.lower()
    if wanted == AUTO:
        choice = _first_available(options, backends)
    else:
        backend = _named(wanted, backends)
        problem = backend.unavailable_reason(options)
        reason = f"requested --backend {wanted}"
        choice = BackendChoice(backend, f"{reason}, but {problem}" if problem else reason)
    _log(choice)
    return choice


def _named(name: str, backends: Sequence[Backend]) -> Backend:
    for backend in backends:
        if name == backend.name or name in backend.aliases:
            return backend
    choices = ", ".join(backend_names(backends))
    raise BackendError(f"unknown backend {name!r}; choose one of {choices}")


def _first_available(options: BackendOptions, backends: Sequence[Backend]) -> BackendChoice:
    skipped: list[str] = []
    for backend in backends:
        problem = backend.unavailable_reason(options)
        if problem is None:
            if skipped:
                return BackendChoice(backend, "; ".join(skipped))
            order = ", ".join(candidate.name for candidate in backends)
            return BackendChoice(backend, f"auto: first that can run here of {order}")
        skipped.append(problem)
    raise BackendError(f"no backend can run here: {'; '.join(skipped)}")


_last_logged_choice: BackendChoice | None = None


def _log(choice: BackendChoice) -> None:
    global _last_logged_choice
    level = logging.DEBUG if choice == _last_logged_choice else logging.INFO
    logger.log(level, "backend: %s (%s)", choice.name, choice.reason)
    _last_logged_choice = choice
