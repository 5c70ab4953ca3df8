"""The network lab's short scenario set (the full set: bench/netlab.py): a keypoint call
through client and node namespaces with a user-space impaired link between them keeps
showing frames and the voices keep sounding at 10 % loss, never shows a motion outside the
codec's quantiser bound, and recovers (picture and sound) quickly after a 5 s blackout.
Every namespace and process is removed afterwards.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.netlab import run_call
from tests.conftest import shared_file
from tests.netlab import Impairment, unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def lab_available() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.startswith("lpn")}


def test_keypoints_keep_flowing_at_10_percent_loss_and_never_show_wrong_motion(
    tmp_path: Path,
) -> None:
    shared_file("media/d0.mp4")  # the peers play it in a subprocess: skip here, not fail there
    before = namespaces()
    figures = run_call("keypoints", Impairment(loss=0.10), window_s=6, logs=tmp_path)
    worst = figures["worst"]
    assert figures["steady"], figures
    # each stream crosses the link twice: ~19 % of frames lost, the rest shown
    assert worst["fps"] > 15, figures
    assert worst["longest_freeze_s"] < 1.0, figures
    assert worst["corrupted"] == 0, figures
    assert worst["max_error_steps"] <= 0.8, figures
    # the voices too: ~19 % of 60 ms packets lost, the rest heard, no long hole
    assert 0.6 < worst["audio_s_per_s"] <= 1.05, figures
    assert worst["audio_longest_gap_s"] < 1.0, figures
    assert namespaces() == before, "the lab removed its namespaces"


def test_keypoints_recover_quickly_after_a_5_s_blackout(tmp_path: Path) -> None:
    shared_file("media/d0.mp4")
    before = namespaces()
    figures = run_call(
        "keypoints", Impairment(blackout_s=5.0), window_s=6, blackout_at_s=1.5, logs=tmp_path
    )
    worst = figures["worst"]
    assert 4.9 < worst["longest_freeze_s"] < 7.0, figures
    assert worst["recovery_s"] is not None and worst["recovery_s"] < 3.0, figures
    assert worst["corrupted"] == 0, figures
    assert 4.9 < worst["audio_longest_gap_s"] < 7.0, figures  # the voices come back too
    assert namespaces() == before, "the lab removed its namespaces"


def test_a_keypoint_call_fits_a_users_own_256_kbit_link(tmp_path: Path) -> None:
    """Only ann behind the cap (bob beside the node): the link is one user's own, up and
    down. The call, voices included, fits with room to spare (a VP8 call of the same clip
    showed 5 fps there in bench/netlab.py)."""
    shared_file("media/d0.mp4")
    before = namespaces()
    figures = run_call(
        "keypoints", Impairment(rate_kbit=256), window_s=6, logs=tmp_path, link="own"
    )
    worst = figures["worst"]
    assert figures["steady"], figures
    assert worst["fps"] > 20, figures  # both directions of ann's link: bob sees ann, ann bob
    assert worst["latency_ms_p50"] < 100, figures  # no standing queue in the cap
    assert worst["corrupted"] == 0, figures
    assert worst["audio_s_per_s"] > 0.9, figures
    assert namespaces() == before, "the lab removed its namespaces"
