"""`python -m lpstream animate`: file to file, audio copied, wire-cost summary, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lpstream.animate import WireCostMeter, main
from lpstream.meshwarp.clip_motion import motions_from_video
from lpstream.protocol import FEEDBACK_DELAY, KEYPOINTS, LANDMARKS, MotionEncoder
from tests.conftest import shared_file


@pytest.fixture
def choice_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The registry's "backend: NAME (REASON)" line, which the CLI shows on stderr. DEBUG:
    a choice identical to an earlier test's is logged at DEBUG only."""
    caplog.set_level(logging.DEBUG, logger="lpstream.backend_registry")
    return caplog


def _streams(path: Path) -> dict[str, tuple[int, float]]:
    """stream type -> (frame count, duration in seconds)."""
    with av.open(str(path)) as container:
        return {
            stream.type: (stream.frames, float(stream.duration * stream.time_base))
            for stream in container.streams
        }


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_meshwarp_animates_a_portrait_with_the_driving_audio(tmp_path, capsys, choice_log):
    out = tmp_path / "einstein_d3.mp4"
    code = main(
        [str(shared_file("media/einstein.jpg")), str(shared_file("media/d3.mp4")),
         "-o", str(out), "--backend", "meshwarp", "--max-frames", "60"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    streams = _streams(out)
    assert streams["video"][0] == 60
    assert streams["audio"][1] == pytest.approx(2.0, abs=0.15)  # audio cut with the video
    frames = _frames(out)
    assert frames[0].shape == (500, 374, 3)  # the source's size, made even for H.264
    source = cv2.cvtColor(cv2.imread(str(shared_file("media/einstein.jpg"))), cv2.COLOR_BGR2RGB)
    assert np.abs(frames[0].astype(int) - source[:500, :374]).mean() < 4  # reference frame
    assert max(np.abs(f.astype(int) - frames[0]).mean() for f in frames) > 0.3  # it moves
    assert "animate" in captured.err  # progress bar
    assert "backend: meshwarp (requested --backend meshwarp)" in choice_log.text
    assert "bytes/frame" in captured.out and "lpstream motion codec" in captured.out
    assert "landmarks profile" in captured.out
    per_frame = float(captured.out.split("): ")[1].split(" bytes/frame")[0])
    assert 5 < per_frame < 300


def test_driving_without_audio_and_auto_backend(tmp_path, capsys, monkeypatch, choice_log):
    monkeypatch.setenv("LPSTREAM_WEIGHTS", str(tmp_path / "no_weights"))
    out = tmp_path / "mona_d0.mp4"
    code = main(
        [str(shared_file("media/mona_lisa.jpg")), str(shared_file("media/d0.mp4")),
         "-o", str(out), "--no-progress", "--max-size", "512"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "backend: meshwarp (no complete LivePortrait weights" in choice_log.text
    streams = _streams(out)
    assert streams["video"][0] == 78 and "audio" not in streams
    assert _frames(out)[0].shape == (512, 288, 3)
    assert "audio none" in captured.out


@pytest.mark.slow
def test_liveportrait_pipeline_on_random_weights(tmp_path, capsys, choice_log) -> None:
    from lpstream.liveportrait.testing import save_random_weights

    torch = pytest.importorskip("torch")
    weights = save_random_weights(tmp_path / "weights", seed=0)
    out = tmp_path / "lp.mp4"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # W + G cost ~9 s per frame on CPU: 2 frames only
    try:
        code = main(
            [str(shared_file("media/einstein.jpg")), str(shared_file("media/d3.mp4")),
             "-o", str(out), "--weights", str(weights), "--device", "cpu",
             "--max-frames", "2", "--no-progress"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "backend: liveportrait (auto: first that can run here" in choice_log.text
    streams = _streams(out)
    assert streams["video"][0] == 2 and "audio" in streams
    assert _frames(out)[0].shape == (500, 374, 3)


@pytest.mark.parametrize(
    ("make_source", "make_driving", "message"),
    [
        (lambda d: d / "missing.jpg", None, "source image not found"),
        (lambda d: _write(d / "notes.jpg", b"not an image"), None, "is not an image"),
        (None, lambda d: d / "missing.mp4", "driving video not found"),
        (None, lambda d: _write(d / "bad.mp4", b"\x00" * 64), "is not a video"),
        (lambda d: _grey_png(d / "grey.png"), None, "no face found in the source"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path, capsys, make_source, make_driving, message):
    source = make_source(tmp_path) if make_source else shared_file("media/einstein.jpg")
    driving = make_driving(tmp_path) if make_driving else shared_file("media/d0.mp4")
    code = main([str(source), str(driving), "-o", str(tmp_path / "out.mp4"), "--backend",
                 "meshwarp", "--no-progress"])  # fmt: skip
    assert code == 1
    assert message in capsys.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _grey_png(path: Path) -> Path:
    cv2.imwrite(str(path), np.full((200, 200, 3), 127, dtype=np.uint8))
    return path


def test_wire_cost_estimate_runs_the_call_feedback_loop() -> None:
    """The summary's bytes/frame come from encoder + decoder with acknowledgements fed back
    (not a keyframe per frame), with the backend's codec profile."""
    motions, fps = motions_from_video(shared_file("media/d3.mp4"), max_frames=90)
    meter = WireCostMeter(LANDMARKS)
    assert meter.profile is LANDMARKS and "landmarks profile" in meter.description
    sizes = [meter(motion, round(i * 1000 / fps)) for i, motion in enumerate(motions)]
    # Keyframes only until the first acknowledgement comes back.
    assert meter.loop.encoder.keyframes_sent <= FEEDBACK_DELAY + 1
    keyframe_only = MotionEncoder(profile=LANDMARKS)
    every_keyframe = [len(keyframe_only.encode(m, i)) for i, m in enumerate(motions)]
    assert np.mean(sizes) < 0.5 * np.mean(every_keyframe)
    assert np.mean(sizes) <= 35
    assert WireCostMeter(KEYPOINTS).profile is KEYPOINTS


def test_output_path_errors_are_clear_and_leave_nothing(tmp_path, capsys) -> None:
    source, driving = shared_file("media/einstein.jpg"), shared_file("media/d0.mp4")

    def run(output: Path, driving_path: Path = driving) -> str:
        code = main([str(source), str(driving_path), "-o", str(output), "--backend", "meshwarp",
                     "--no-progress", "--max-frames", "2"])  # fmt: skip
        assert code == 1
        return capsys.readouterr().err

    assert "must end in .mp4" in run(tmp_path / "out.txt")
    assert "is a folder" in run(tmp_path)
    blocker = _write(tmp_path / "blocker", b"a file where a folder is needed")
    assert f"cannot write {blocker / 'out.mp4'}" in run(blocker / "out.mp4")
    # A file FFmpeg opens (as a one-image "video") but cannot decode: an error naming the
    # input, not a PyAV traceback, and no half-written output left behind.
    fake = _write(tmp_path / "fake.jpg", b"not a jpeg at all")
    out = tmp_path / "out.mp4"
    assert f"{fake} cannot be decoded as video" in run(out, fake)
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--max-frames", "0", "at least 1"), ("--max-size", "1", "at least 64"),
     ("--max-frames", "two", "not an integer")],
)  # fmt: skip
def test_nonsense_limits_are_usage_errors(tmp_path, capsys, option, value, message) -> None:
    # Before: --max-frames 0 wrote an empty video with exit code 0, and a 1-pixel --max-size
    # reported "no face found" for a perfectly good portrait.
    with pytest.raises(SystemExit) as raised:
        main(["source.jpg", "driving.mp4", "-o", str(tmp_path / "out.mp4"), option, value])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
