"""Shared fixtures: paths to ../shared data; a test that needs an absent file skips loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpstream.shared_data import shared_dir


def shared_file(relative: str) -> Path:
    path = shared_dir() / relative
    if not path.exists():
        pytest.skip(f"shared data file missing: {path} (see ../shared/README.md)")
    return path


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder missing: {path}")
    return path
