"""Table fitting builds new profiles: the shared ones and their statistics files never change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpstream.protocol import (
    KEYPOINTS,
    LANDMARKS,
    DecodeStatus,
    FeedbackLoop,
    keypoints_statistics,
    landmarks_statistics,
)
from lpstream.protocol.probability_tables import ResidualStatistics
from lpstream.protocol.table_fit import refit, statistics_path
from tests.fixtures.protocol.make_fixtures import meshwarp_motion


def test_refit_returns_a_new_profile_and_leaves_the_shipped_one_alone() -> None:
    clip = ([meshwarp_motion(i % 40) for i in range(80)], 30.0)
    shipped_tables = LANDMARKS.delta_tables
    refitted = refit(LANDMARKS, [clip])
    assert refitted is not LANDMARKS
    assert (refitted.profile_id, refitted.name, refitted.fixed_steps) == (
        LANDMARKS.profile_id, LANDMARKS.name, LANDMARKS.fixed_steps
    )
    assert refitted.statistics != LANDMARKS.statistics
    assert refitted.delta_tables != shipped_tables
    assert LANDMARKS.delta_tables is shipped_tables
    assert LANDMARKS.statistics == ResidualStatistics.from_module(landmarks_statistics)
    # The loop's decoder knows the refitted profile, so every frame decodes within the
    # profile's steps (a decoder with the shipped statistics would mispredict keyframes).
    run = FeedbackLoop(refitted).run(*clip)
    assert set(run.statuses) == {DecodeStatus.DECODED}
    step = LANDMARKS.exp_step(100_000) * 1e-5
    for source, shown in run.decoded():
        assert np.abs(shown.exp - clip[0][source].exp).max() <= LANDMARKS.dead_zone * step + 1e-9


def test_each_profile_reads_the_statistics_file_named_after_it() -> None:
    assert statistics_path(KEYPOINTS) == Path(keypoints_statistics.__file__)
    assert statistics_path(LANDMARKS).name == "landmarks_statistics.py"
    assert KEYPOINTS.statistics == ResidualStatistics.from_module(keypoints_statistics)
