"""bench/reenactment.py in its CI-sized run: it writes its numbers and its picture sheet, and
its metric can tell a reenactment from the portrait left frozen."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2

from bench import reenactment
from tests.conftest import shared_file


def test_quick_reenactment_writes_numbers_and_a_sheet(tmp_path: Path) -> None:
    for clip in reenactment.CLIPS:  # the bench reads them itself: skip here, not fail there
        shared_file(f"media/{clip}.mp4")
    assert reenactment.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "reenactment_quick.json").read_text())
    sheet = cv2.imread(str(tmp_path / "reenactment_quick_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= reenactment.CROP_PX * len(reenactment.CLIPS)
    assert set(result["clips"]) == set(reenactment.CLIPS)
    for clip in result["clips"].values():
        assert clip["frames"] >= 5
        numbers = [clip[k] for k in ("psnr_db", "psnr_frozen_db", "ssim", "ssim_frozen")]
        numbers += [clip["sender_ms"], clip["receiver_ms"]]
        numbers += [v for v in clip["landmark_r"].values() if v is not None]
        assert all(isinstance(v, float) and math.isfinite(v) for v in numbers), clip
        assert 0.0 < clip["ssim"] <= 1.0 and 10.0 < clip["psnr_db"] < 60.0
    # d3 opens the mouth wide and turns the head: the frozen first frame must lose to the
    # reenactment on it, or the metric could not fail a renderer that ignores motion.
    d3 = result["clips"]["d3"]
    assert d3["psnr_frozen_db"] < d3["psnr_db"] - 1.0
    assert d3["ssim_frozen"] < d3["ssim"]
    assert d3["landmark_r"]["mouth"] > 0.8
