"""Weights: official layout, strict load round trip, `weights check` / `weights download` CLI."""

from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lpstream.errors import WeightsError
from lpstream.liveportrait import load_networks
from lpstream.liveportrait.testing import random_networks, save_random_weights
from lpstream.liveportrait.weights import (
    APPEARANCE_FILE,
    MOTION_FILE,
    REQUIRED_FILES,
    SINGLE_NETWORK_FILES,
    STITCHING_FILE,
    STITCHING_SUB_DICTS,
    WEIGHTS_ENV,
    check_weights,
    default_weights_dir,
    expected_layouts,
)
from lpstream.liveportrait.weights_cli import main as weights_main
from lpstream.shared_data import REPO_ROOT
from tests.conftest import shared_file

SEED = 7


class ArbitraryObject:
    """Unpickling this would need code execution: `weights_only=True` must refuse it."""


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_weights(tmp_path_factory.mktemp("weights"), seed=SEED)


def linked_copy(good: Path, target: Path, replace: str | None = None) -> Path:
    """A weights folder whose files are symlinks to `good`'s, except `replace` (left out)."""
    for relative in REQUIRED_FILES:
        if relative == replace:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).symlink_to(good / relative)
    (target / REQUIRED_FILES[0]).parent.mkdir(parents=True, exist_ok=True)
    (target / STITCHING_FILE).parent.mkdir(parents=True, exist_ok=True)
    return target


def layout_rows(layout: dict) -> list[list[object]]:
    return [
        [key, list(shape), str(dtype).removeprefix("torch.")]
        for key, (shape, dtype) in layout.items()
    ]


def test_expected_layouts_equal_the_official_checkpoint_layout() -> None:
    official = json.loads(shared_file("liveportrait/checkpoint_layout.json").read_text())
    layouts = expected_layouts()
    for name, relative in SINGLE_NETWORK_FILES.items():
        assert layout_rows(layouts[name]) == official[relative], name
    for name, sub_dict in STITCHING_SUB_DICTS.items():
        assert layout_rows(layouts[name]) == official[STITCHING_FILE][sub_dict], name


def test_manifest_lists_the_required_files_with_their_tensor_sizes() -> None:
    manifest = json.loads((REPO_ROOT / "models" / "manifest.json").read_text())
    assert manifest["hub_repo_id"] == "KwaiVGI/LivePortrait"
    required = [entry for entry in manifest["files"] if entry["required"]]
    assert [entry["path"] for entry in required] == list(REQUIRED_FILES)
    layouts = expected_layouts()
    for entry in required:
        names = [n for n, f in SINGLE_NETWORK_FILES.items() if f == entry["path"]] or list(
            STITCHING_SUB_DICTS
        )
        tensors = [spec for name in names for spec in layouts[name].values()]
        payload = sum(math.prod(shape) * dtype.itemsize for shape, dtype in tensors)
        assert (entry["tensors"], entry["tensor_bytes"]) == (len(tensors), payload)


def test_random_weights_pass_check_and_load_strictly(good_weights: Path) -> None:
    assert check_weights(good_weights) == []
    networks = load_networks(good_weights)
    reference = random_networks(SEED)
    for name, module in reference.items():
        loaded = getattr(networks, name)
        assert type(loaded) is type(module)
        assert not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
        expected, actual = module.state_dict(), loaded.state_dict()
        assert list(actual) == list(expected)
        for key, tensor in expected.items():
            assert torch.equal(actual[key], tensor), f"{name}.{key}"
    assert networks.weights_dir == good_weights


def test_random_weights_are_plausible(good_weights: Path) -> None:
    stitching = torch.load(good_weights / STITCHING_FILE, weights_only=True)
    assert set(stitching) == set(STITCHING_SUB_DICTS.values())
    appearance = torch.load(good_weights / APPEARANCE_FILE, weights_only=True)
    variances = [v for k, v in appearance.items() if k.endswith("running_var")]
    assert variances and all(bool((v > 0).all()) for v in variances)
    assert not all(bool((v == 1).all()) for v in variances)  # not just the constructor defaults


def test_stitching_file_with_ddp_prefix_loads(good_weights: Path, tmp_path: Path) -> None:
    folder = linked_copy(good_weights, tmp_path, replace=STITCHING_FILE)
    original = torch.load(good_weights / STITCHING_FILE, weights_only=True)
    prefixed = {
        sub: collections.OrderedDict((f"module.{k}", v) for k, v in sd.items())
        for sub, sd in original.items()
    }
    torch.save(prefixed, folder / STITCHING_FILE)
    assert check_weights(folder) == []
    networks = load_networks(folder)
    for key, value in original["retarget_eye"].items():
        assert torch.equal(networks.retarget_eye.state_dict()[key], value)


def test_cli_check_accepts_a_good_folder(good_weights: Path, capsys) -> None:
    assert weights_main(["check", str(good_weights)]) == 0
    assert "OK" in capsys.readouterr().out


def edit_state_dict(good: Path, folder: Path, relative: str, edit) -> None:
    state = torch.load(good / relative, weights_only=True)
    edit(state)
    torch.save(state, folder / relative)


@pytest.mark.parametrize(
    ("relative", "edit", "expected_key", "expected_message"),
    [
        (MOTION_FILE, None, None, "missing file"),
        (
            APPEARANCE_FILE,
            lambda sd: sd.__setitem__("second.weight", torch.zeros(512, 256, 3, 3)),
            "second.weight",
            "shape (512, 256, 3, 3), expected (512, 256, 1, 1)",
        ),
        (
            APPEARANCE_FILE,
            lambda sd: sd.__setitem__("extra.weight", torch.zeros(3)),
            "extra.weight",
            "unexpected tensor",
        ),
        (
            APPEARANCE_FILE,
            lambda sd: sd.pop("first.conv.bias"),
            "first.conv.bias",
            "missing tensor",
        ),
        (
            APPEARANCE_FILE,
            lambda sd: sd.__setitem__("second.bias", sd["second.bias"].half()),
            "second.bias",
            "dtype torch.float16, expected torch.float32",
        ),
        (
            STITCHING_FILE,
            lambda sd: sd.pop("retarget_eye"),
            "retarget_eye",
            "has no sub-dict 'retarget_eye'",
        ),
        (
            STITCHING_FILE,
            lambda sd: sd["retarget_mouth"].__setitem__("mlp.0.weight", torch.zeros(128, 64)),
            "retarget_mouth/mlp.0.weight",
            "shape (128, 64), expected (128, 65)",
        ),
    ],
)
def test_broken_folders_name_the_problem(
    good_weights: Path, tmp_path: Path, capsys, relative, edit, expected_key, expected_message
) -> None:
    folder = linked_copy(good_weights, tmp_path, replace=relative)
    if edit is not None:
        edit_state_dict(good_weights, folder, relative, edit)
    problems = check_weights(folder)
    assert len(problems) == 1, problems
    assert (problems[0].file, problems[0].key) == (relative, expected_key)
    assert expected_message in problems[0].message

    assert weights_main(["check", str(folder)]) != 0
    output = capsys.readouterr()
    assert relative in output.out and expected_message in output.out
    assert "1 problem" in output.err

    with pytest.raises(WeightsError) as raised:
        load_networks(folder)
    assert relative in str(raised.value) and "weights download" in str(raised.value)


def test_corrupt_and_unsafe_files_are_rejected(good_weights: Path, tmp_path: Path) -> None:
    folder = linked_copy(good_weights, tmp_path, replace=APPEARANCE_FILE)
    (folder / APPEARANCE_FILE).write_bytes(b"not a checkpoint")
    problems = check_weights(folder)
    assert [p.file for p in problems] == [APPEARANCE_FILE]
    assert "cannot read" in problems[0].message

    # A pickle that needs arbitrary code (a custom class) must not be unpickled.
    torch.save({"payload": ArbitraryObject()}, folder / APPEARANCE_FILE)
    with pytest.raises(WeightsError, match="cannot read"):
        load_networks(folder)


def test_missing_folder_gives_an_actionable_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(WeightsError, match="weights download"):
        load_networks(missing)
    assert weights_main(["check", str(missing)]) == 1


def test_default_folder_and_env_override(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert default_weights_dir() == REPO_ROOT / "models"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert default_weights_dir() == tmp_path
    assert weights_main(["check"]) == 1  # the empty env folder is what gets checked


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "lpstream", "weights", *args],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip


def test_download_without_network_fails_with_the_manual_alternative(tmp_path: Path) -> None:
    result = run_cli("download", "--dir", str(tmp_path / "w"))
    assert result.returncode != 0
    assert "cannot download" in result.stderr and "Manual alternative" in result.stderr
    assert "HF_HUB_OFFLINE is set" in result.stderr  # the real cause, not "not in cache"
    assert all(relative in result.stderr for relative in REQUIRED_FILES)
    assert "Traceback" not in result.stderr


def test_download_skips_files_that_are_already_valid(good_weights: Path) -> None:
    # Offline, so this only succeeds if nothing is fetched: every file is already valid.
    result = run_cli("download", "--dir", str(good_weights))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello\n", "KeyError"),  # torch's restricted unpickler fails with a KeyError here
        (b"", "EOFError"),
        (None, "failed finding central directory"),  # a truncated download
    ],
)
def test_unreadable_files_are_one_short_line(
    good_weights: Path, tmp_path: Path, capsys, content: bytes | None, reason: str
) -> None:
    folder = linked_copy(good_weights, tmp_path, replace=MOTION_FILE)
    original = (good_weights / MOTION_FILE).read_bytes()
    (folder / MOTION_FILE).write_bytes(original[:100_000] if content is None else content)
    problems = check_weights(folder)
    assert [p.file for p in problems] == [MOTION_FILE]
    assert reason in problems[0].message and "download again" in problems[0].message
    assert str(folder) not in problems[0].message  # the file is named once, by the Problem
    assert "internal miniz error" not in problems[0].message  # torch's advice paragraph
    assert weights_main(["check", str(folder)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{MOTION_FILE}: cannot read") and len(
        lines[0]
    ) < 300


def test_download_failure_names_the_innermost_cause(monkeypatch) -> None:
    from lpstream.liveportrait.weights_cli import download_failure_reason

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # The shape of huggingface_hub's error: a generic wrapper around the network failure.
    wrapped = FileNotFoundError("cannot find the requested files in the local cache")
    wrapped.__cause__ = OSError("[Errno -2] Name or service not known")
    reason = download_failure_reason(wrapped)
    assert reason == "OSError: [Errno -2] Name or service not known"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in download_failure_reason(wrapped)


def test_a_file_given_as_the_folder_is_named_as_such(tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "weights.zip"
    not_a_folder.write_bytes(b"zip")
    assert [p.message for p in check_weights(not_a_folder)] == ["is a file, not a weights folder"]
    assert weights_main(["check", str(not_a_folder)]) == 1
    assert "download --dir" not in capsys.readouterr().err  # no advice to download into a file
