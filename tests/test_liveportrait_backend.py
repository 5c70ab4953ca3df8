"""LivePortrait backend end to end on CPU with random weights and real portraits."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import torch

from lpstream.backend import AvatarRenderer, Controls, MotionSender, SenderOutput
from lpstream.errors import ImageError, NoFaceError
from lpstream.liveportrait.device import DeviceError, choose_device, place_networks
from lpstream.liveportrait.keypoints import rotation_matrix, stitch
from lpstream.liveportrait.renderer import LivePortraitRenderer
from lpstream.liveportrait.sender import LivePortraitSender
from lpstream.liveportrait.testing import random_liveportrait_networks
from lpstream.liveportrait.weights import LivePortraitNetworks
from lpstream.motion import Motion
from tests.conftest import shared_file


def read_rgb(relative: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(shared_file(relative))), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def networks() -> LivePortraitNetworks:
    torch.set_num_threads(2)
    return random_liveportrait_networks(seed=0)


@pytest.fixture(scope="module")
def source_image() -> np.ndarray:
    return read_rgb("media/mona_lisa.jpg")


@pytest.fixture(scope="module")
def renderer(networks, source_image) -> Iterator[LivePortraitRenderer]:
    renderer = LivePortraitRenderer(networks, device="cpu")
    renderer.set_source(source_image)
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def sender(networks) -> Iterator[LivePortraitSender]:
    sender = LivePortraitSender(networks, device="cpu")
    yield sender
    sender.close()


@pytest.fixture(scope="module")
def driver_motion(sender) -> Motion:
    sender.reset()
    output = sender.extract(read_rgb("media/pearl_earring.jpg"), timestamp_ms=0)
    assert output.motion is not None and output.face_id is not None
    return output.motion


def test_backend_implements_the_protocols(sender, renderer) -> None:
    assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)


def test_sender_extracts_motion_with_ratios(driver_motion: Motion) -> None:
    for angle in (driver_motion.pitch, driver_motion.yaw, driver_motion.roll):
        assert -97.5 <= angle <= 97.5
    assert driver_motion.exp.shape == (21, 3) and np.isfinite(driver_motion.exp).all()
    assert np.isfinite(driver_motion.t).all() and np.isfinite(driver_motion.scale)
    assert driver_motion.eye_ratio is not None and driver_motion.eye_ratio.shape == (2,)
    assert 0.0 < driver_motion.eye_ratio.min() < 1.0
    assert driver_motion.lip_ratio is not None and 0.0 <= driver_motion.lip_ratio < 1.0
    assert "track_id" not in driver_motion.extra  # SenderOutput.face_id carries it


def test_sender_returns_none_without_a_face(networks) -> None:
    sender = LivePortraitSender(networks, device="cpu")
    try:
        blank = np.full((240, 320, 3), 90, np.uint8)
        assert sender.extract(blank, timestamp_ms=0) == SenderOutput(None, None)
        with pytest.raises(ImageError):
            sender.extract(np.zeros((240, 320), np.uint8))
    finally:
        sender.close()


def test_source_without_a_face_is_rejected(networks) -> None:
    renderer = LivePortraitRenderer(networks, device="cpu")
    try:
        with pytest.raises(RuntimeError, match="set_source"):
            renderer.driving_keypoints(Motion(0, 0, 0, np.zeros(3), 1.4, np.zeros((21, 3))))
        with pytest.raises(NoFaceError):
            renderer.set_source(np.full((256, 256, 3), 200, np.uint8))
    finally:
        renderer.close()


def expected_keypoints(renderer, driving: Motion, reference: Motion) -> torch.Tensor:
    """`keypoints.relative_motion` written out with plain rotation matrices."""
    source = renderer._source

    def rotation(m: Motion) -> torch.Tensor:
        angles = (torch.tensor([m.pitch]), torch.tensor([m.yaw]), torch.tensor([m.roll]))
        return rotation_matrix(*angles)

    new_rotation = rotation(driving) @ rotation(reference).transpose(1, 2) @ source.motion.rotation
    new_exp = source.motion.exp + torch.from_numpy(driving.exp - reference.exp)[None]
    new_scale = source.motion.scale * driving.scale / reference.scale
    new_t = source.motion.t[0].clone()
    new_t[:2] += torch.from_numpy(driving.t[:2] - reference.t[:2])
    kp = new_scale[:, :, None] * (source.kp_canonical @ new_rotation + new_exp)
    kp[..., :2] += new_t[:2]
    if source.lip_closing_delta is not None:
        kp = kp + source.lip_closing_delta
    return kp


def test_relative_motion_starts_at_the_source_and_follows_the_driver(
    renderer, driver_motion: Motion
) -> None:
    unstitched = Controls(stitching=False)
    renderer.reset_reference()
    first = renderer.driving_keypoints(driver_motion, unstitched)
    torch.testing.assert_close(first, expected_keypoints(renderer, driver_motion, driver_motion))
    x_s = renderer._source.kp_source
    closing = renderer._source.lip_closing_delta
    torch.testing.assert_close(first, x_s if closing is None else x_s + closing)

    turned = driver_motion.copy()
    turned.yaw += 15.0
    turned.exp[5] += 0.02
    turned.t[:2] += 0.05
    moved = renderer.driving_keypoints(turned, unstitched)
    torch.testing.assert_close(moved, expected_keypoints(renderer, turned, driver_motion))
    assert (moved - first).abs().max() > 0.01

    frozen = renderer.driving_keypoints(turned, Controls(stitching=False, head_motion=0.0))
    expression_only = driver_motion.copy()
    expression_only.exp = turned.exp
    torch.testing.assert_close(
        frozen, expected_keypoints(renderer, expression_only, driver_motion), atol=1e-5, rtol=0
    )

    renderer.reset_reference()
    again = renderer.driving_keypoints(turned, unstitched)
    torch.testing.assert_close(again, first, atol=1e-5, rtol=0)


def test_controls_apply_retargeting_and_stitching(renderer, driver_motion: Motion) -> None:
    renderer.reset_reference()
    source, nets = renderer._source, renderer._networks
    base = renderer.driving_keypoints(driver_motion, Controls(stitching=False))
    closing = source.lip_closing_delta
    without_closing = base if closing is None else base - closing

    eyes = renderer.driving_keypoints(driver_motion, Controls(stitching=False, eye_open=0.05))
    x_s = source.kp_source.flatten(1)
    eye_input = torch.cat([x_s, source.eye_ratio, torch.tensor([[0.05]])], 1)
    torch.testing.assert_close(eyes, base + nets.retarget_eye(eye_input).reshape(1, 21, 3))

    lips = renderer.driving_keypoints(driver_motion, Controls(stitching=False, lip_open=0.4))
    lip_input = torch.cat([x_s, source.lip_ratio, torch.tensor([[0.4]])], 1)
    lip_delta = nets.retarget_lip(lip_input).reshape(1, 21, 3)
    torch.testing.assert_close(lips, without_closing + lip_delta)  # replaces the lip closing

    stitched = renderer.driving_keypoints(driver_motion, Controls(stitching=True))
    expected = stitch(nets.stitching, source.kp_source, without_closing)
    torch.testing.assert_close(stitched, expected if closing is None else expected + closing)


def test_render_pastes_one_frame_into_the_source(renderer, driver_motion, source_image) -> None:
    # The suite's only full-size W + G run (seconds on CPU).
    renderer.reset_reference()
    frame = renderer.render(driver_motion, Controls())
    assert frame.shape == source_image.shape and frame.dtype == np.uint8
    x0, y0, x1, y1 = renderer._source.paste_back.box
    outside = np.ones(source_image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(frame[outside], source_image[outside])
    inside = frame[y0:y1, x0:x1].astype(np.int16) - source_image[y0:y1, x0:x1]
    assert np.abs(inside).mean() > 1.0  # the rendered face really was pasted in


def test_device_plan_on_this_machine(networks) -> None:
    plan = choose_device("cpu")
    assert plan.device.type == "cpu" and plan.render_dtype == plan.motion_dtype == torch.float32
    with pytest.raises(DeviceError):
        choose_device("tpu")
    placed = place_networks(networks, plan)
    assert next(placed.spade_generator.parameters()).dtype == torch.float32
    if torch.cuda.is_available():
        assert choose_device("auto").render_dtype == torch.float16
    else:
        assert choose_device("auto").device.type == "cpu"
        with pytest.raises(DeviceError, match="no CUDA"):
            choose_device("cuda")
