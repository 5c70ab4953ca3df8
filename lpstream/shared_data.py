"""Where the project's read-only shared data (`../shared/` beside the checkout) lives."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """`$LPSTREAM_SHARED`, else `../shared` beside the repository root."""
    env = os.environ.get("LPSTREAM_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"
