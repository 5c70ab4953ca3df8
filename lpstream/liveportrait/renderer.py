"""Renderer of the LivePortrait backend: cached source portrait + Motion -> frame.

Once per source portrait: crop it (official source crop), run M and F, and prepare the
paste-back mask. Per frame: relative motion against the first motion received
(`lpstream.liveportrait.keypoints.relative_motion`), optional eye/lip retargeting from the
receiver's Controls, stitching, then W + G and paste-back into the source frame.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from lpstream.backend import Controls
from lpstream.errors import NoFaceError
from lpstream.face.crop import SOURCE_CROP_SIZE, crop_source
from lpstream.face.landmarks import LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.liveportrait.device import choose_device, place_networks
from lpstream.liveportrait.images import check_rgb, image_tensor
from lpstream.liveportrait.keypoints import (
    HeadMotion,
    apply_driving_multiplier,
    eye_retargeting_input,
    keypoints_from_motion,
    lip_retargeting_input,
    relative_motion,
    retargeting_delta,
    rotation_matrix,
    stitch,
)
from lpstream.liveportrait.networks.fused import FusedWarpDecode, PlainWarpDecode
from lpstream.liveportrait.paste_back import PasteBack
from lpstream.liveportrait.weights import LivePortraitNetworks
from lpstream.motion import NUM_KEYPOINTS, Motion

logger = logging.getLogger(__name__)

LIP_NORMALIZE_THRESHOLD = 0.03
"""Official default: a source whose lips are open wider than this is closed before animating,
so that a driver's closed mouth (the usual reference frame) maps to a closed mouth."""


def head_motion_of(motion: Motion, device: torch.device) -> HeadMotion:
    """Batch-of-one tensors of a received Motion."""

    def tensor(values: object) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32), device=device)

    return HeadMotion(
        rotation=rotation_matrix(
            tensor([motion.pitch]), tensor([motion.yaw]), tensor([motion.roll])
        ),
        exp=tensor(motion.exp)[None],
        scale=tensor([[motion.scale]]),
        t=tensor(motion.t)[None],
    )


@dataclass
class PreparedSource:
    """Everything the renderer computes once per source portrait."""

    feature_3d: torch.Tensor
    """F's 1×32×16×64×64 appearance volume of the crop (render dtype)."""
    kp_canonical: torch.Tensor
    """(1, 21, 3) canonical keypoints x_c,s."""
    motion: HeadMotion
    """The source's own pose, expression, scale and translation."""
    kp_source: torch.Tensor
    """(1, 21, 3) x_s = transform(x_c,s, source motion)."""
    eye_ratio: torch.Tensor
    """(1, 2) eye-open ratios of the source."""
    lip_ratio: torch.Tensor
    """(1, 1) lip-open ratio of the source."""
    lip_closing_delta: torch.Tensor | None
    """R_lip delta that closes an open source mouth (official lip normalisation), or None."""
    paste_back: PasteBack
    """Blends rendered crops into the source frame."""


_fused_lock = threading.Lock()
_fused_cache: weakref.WeakKeyDictionary[torch.nn.Module, tuple[int, FusedWarpDecode]] = (
    weakref.WeakKeyDictionary()
)
"""W module -> (id of its G, the fused W+G built from them). Weak: dropped with the networks."""


def shared_fused_warp_decode(networks: LivePortraitNetworks) -> FusedWarpDecode:
    """The fused W+G of `networks`, built once and shared by every renderer of them.

    The fused module holds its own folded copy of W and G (~480 MB in fp32); a call server
    creates one renderer per viewed participant from the same networks, and inference never
    modifies the module, so one copy serves them all.
    """
    warping, decoder = networks.warping_module, networks.spade_generator
    with _fused_lock:
        cached = _fused_cache.get(warping)
        if cached is not None and cached[0] == id(decoder):
            return cached[1]
        fused = FusedWarpDecode(warping, decoder)
        _fused_cache[warping] = (id(decoder), fused)
        return fused


class LivePortraitRenderer:
    """AvatarRenderer: cached source + Motion + Controls -> frame of the source's size."""

    def __init__(
        self,
        networks: LivePortraitNetworks,
        device: str | torch.device = "auto",
        normalize_lip: bool = True,
        driving_multiplier: float = 1.0,
        fused: bool | None = None,
    ) -> None:
        self._plan = choose_device(device)
        self._networks = place_networks(networks, self._plan)
        if fused is None:
            # The fused rewrite (BN/spectral norm folded, sub-pixel convs) computes the same
            # function with ~190 GFLOP less per frame; it is validated in fp32 only.
            fused = self._plan.render_dtype == torch.float32
        self._warp_decode: torch.nn.Module = (
            shared_fused_warp_decode(self._networks)
            if fused
            else PlainWarpDecode(self._networks.warping_module, self._networks.spade_generator)
        )
        self.normalize_lip = normalize_lip
        self.driving_multiplier = driving_multiplier
        self._detector: LandmarkDetector | None = None
        self._source: PreparedSource | None = None
        self._reference: HeadMotion | None = None

    # -- source --------------------------------------------------------------------------
    def set_source(self, image_rgb: np.ndarray) -> None:
        image = check_rgb(image_rgb, "source portrait")
        if self._detector is None:
            self._detector = LandmarkDetector(max_faces=2, video_mode=False)
        faces = self._detector.detect(image)
        if not faces:
            raise NoFaceError("no face found in the source portrait; use a clear frontal photo")
        if len(faces) > 1:
            logger.info("source has %d faces; animating the largest", len(faces))
        crop = crop_source(image, faces[0], size=SOURCE_CROP_SIZE)
        nets, plan = self._networks, self._plan
        with torch.inference_mode():
            network_input = image_tensor(crop.image, plan, plan.motion_dtype)
            output = nets.motion_extractor(network_input)
            feature_3d = nets.appearance_feature_extractor(network_input.to(plan.render_dtype))
            kp_canonical = output["kp"].float().reshape(1, NUM_KEYPOINTS, 3)
            motion = HeadMotion(
                rotation=rotation_matrix(output["pitch"], output["yaw"], output["roll"]),
                exp=output["exp"].float().reshape(1, NUM_KEYPOINTS, 3),
                scale=output["scale"].float(),
                t=output["t"].float(),
            )
            kp_source = keypoints_from_motion(kp_canonical, motion)
            eye_ratio = torch.as_tensor(eye_open_ratio(crop.points), device=plan.device)[None]
            lip_ratio = torch.tensor([[lip_open_ratio(crop.points)]], device=plan.device)
            closing = None
            if self.normalize_lip and lip_ratio.item() >= LIP_NORMALIZE_THRESHOLD:
                features = lip_retargeting_input(kp_source, lip_ratio, torch.zeros_like(lip_ratio))
                closing = retargeting_delta(nets.retarget_lip, features)
        self._source = PreparedSource(
            feature_3d=feature_3d,
            kp_canonical=kp_canonical,
            motion=motion,
            kp_source=kp_source,
            eye_ratio=eye_ratio.float(),
            lip_ratio=lip_ratio.float(),
            lip_closing_delta=closing,
            paste_back=PasteBack.prepare(image, crop.crop_to_original, SOURCE_CROP_SIZE),
        )
        self._reference = None

    def reset_reference(self) -> None:
        self._reference = None

    # -- per frame -----------------------------------------------------------------------
    def driving_keypoints(self, motion: Motion, controls: Controls | None = None) -> torch.Tensor:
        """(1, 21, 3) keypoints the source is warped to for `motion` (no W/G run).

        The first motion after `set_source`/`reset_reference` becomes the driver's reference.
        """
        controls = controls or Controls()
        source = self._require_source()
        nets = self._networks
        driving = head_motion_of(motion, self._plan.device)
        if self._reference is None:
            self._reference = driving
        with torch.inference_mode():
            new = relative_motion(source.motion, driving, self._reference, controls.head_motion)
            kp_driving = keypoints_from_motion(source.kp_canonical, new)
            x_s = source.kp_source
            if controls.eye_open is not None:
                target = torch.full((1, 1), float(controls.eye_open), device=x_s.device)
                features = eye_retargeting_input(x_s, source.eye_ratio, target)
                kp_driving = kp_driving + retargeting_delta(nets.retarget_eye, features)
            if controls.lip_open is not None:
                target = torch.full((1, 1), float(controls.lip_open), device=x_s.device)
                features = lip_retargeting_input(x_s, source.lip_ratio, target)
                kp_driving = kp_driving + retargeting_delta(nets.retarget_lip, features)
            if controls.stitching:
                kp_driving = stitch(nets.stitching, x_s, kp_driving)
            if source.lip_closing_delta is not None and controls.lip_open is None:
                kp_driving = kp_driving + source.lip_closing_delta
            return apply_driving_multiplier(x_s, kp_driving, self.driving_multiplier)

    def render_crop(self, kp_driving: torch.Tensor) -> np.ndarray:
        """W + G: the 512² RGB uint8 face crop for driving keypoints (1, 21, 3)."""
        source = self._require_source()
        dtype = self._plan.render_dtype
        with torch.inference_mode():
            image = self._warp_decode(
                source.feature_3d, kp_driving.to(dtype), source.kp_source.to(dtype)
            )
        pixels = (image[0].float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        return pixels.permute(1, 2, 0).cpu().numpy()

    def render(self, motion: Motion, controls: Controls | None = None) -> np.ndarray:
        crop = self.render_crop(self.driving_keypoints(motion, controls))
        return self._require_source().paste_back(crop)

    def _require_source(self) -> PreparedSource:
        if self._source is None:
            raise RuntimeError("set_source() must be called before rendering")
        return self._source

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
