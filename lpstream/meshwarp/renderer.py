"""Receiver of the built-in backend: warp the cached source portrait by the received motion.

Per frame: expression deltas (relative to the driver's reference frame) move the source's 21
control points and, through the fixed propagation matrix, its whole 468-vertex mesh in the
head-fixed frame; the driver's pose change relative to its reference is applied on top of the
source's own pose (LivePortrait's relative motion,
`lpstream.liveportrait.keypoints.relative_motion`); the mesh is projected into the image,
surrounded by the stitching skirt, and the source is warped piecewise-affinely onto it.
A mouth opened beyond the source's gets a painted cavity instead of stretched lips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lpstream.backend import Controls
from lpstream.errors import ImageError, NoFaceError
from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector
from lpstream.face.ratios import (
    INNER_LIPS,
    LEFT_EYE_CORNERS,
    LEFT_EYE_LIDS,
    MOUTH_CORNERS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_LIDS,
)
from lpstream.meshwarp.canonical import NUM_MESH_VERTICES
from lpstream.meshwarp.eyelids import LID_SKIN, lid_cover_strength, paint_lid, sample_colour
from lpstream.meshwarp.face_motion import FaceFit, fit_face
from lpstream.meshwarp.gaze import (
    IRIS_CENTRES,
    core_sources,
    core_targets,
    fan_triangles,
    iris_offsets,
    iris_targets,
    lid_fractions,
    take_gaze,
)
from lpstream.meshwarp.mouth import lip_colour, paint_cavity
from lpstream.meshwarp.pose import (
    SimilarityFit,
    model_to_image_frame,
    rotation_from_euler,
    scale_rotation,
)
from lpstream.meshwarp.retarget import set_eye_openness, set_lip_openness
from lpstream.meshwarp.stitching import Skirt, build_skirt
from lpstream.meshwarp.topology import (
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    FaceTopology,
    face_topology,
)
from lpstream.meshwarp.warp import warp_image
from lpstream.motion import Motion

logger = logging.getLogger(__name__)

MIN_SOURCE_FACE_PX = 32.0
"""A source face smaller than this (landmark box side) has too few pixels to animate."""
CAVITY_FULL_AT = 0.06
"""Extra lip-open ratio (beyond the source's own) at which the painted cavity is opaque;
smaller openings fade in, so landmark jitter never flickers a dark slit between the lips."""
SOURCE_OPEN_RATIO = 0.15
"""A source mouth this open (lip-open ratio) keeps most of its own interior texture."""
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class _Source:
    """Everything computed once per source portrait."""

    image: np.ndarray
    fit: FaceFit
    points: np.ndarray
    """(468, 2) source pixel positions of the face vertices."""
    skirt: Skirt
    vertices: np.ndarray
    """(468 + R·K, 2) every source vertex: the face, then the skirt's rings."""
    lip_rgb: np.ndarray
    mouth_ratio: float
    lid_rgb: tuple[np.ndarray, np.ndarray]
    """Lid skin colour of the image-left and image-right eye."""
    eye_ratios: tuple[float, float]
    irises: np.ndarray
    """(2, 2) source pixel positions of the iris centres (image-left eye, image-right eye)."""
    iris_along: np.ndarray
    """(2,) the source's iris offsets along its eyes, eye widths (lpstream.meshwarp.gaze)."""
    iris_fraction: np.ndarray
    """(2,) where the source's irises sit between upper (0) and lower (1) lid."""


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        shape = getattr(image_rgb, "shape", None)
        raise ImageError(f"source must be an RGB array of shape (H, W, 3), got {shape}")
    if image_rgb.dtype != np.uint8:
        raise ImageError(f"source must be uint8 RGB, got dtype {image_rgb.dtype}")
    return np.ascontiguousarray(image_rgb)


def _opening_ratio(points_2d: np.ndarray, gap: tuple[int, int], width: tuple[int, int]) -> float:
    opening = np.linalg.norm(points_2d[gap[0]] - points_2d[gap[1]])
    span = np.linalg.norm(points_2d[width[0]] - points_2d[width[1]])
    return float(opening / max(span, 1e-6))


def _mouth_ratio(points_2d: np.ndarray) -> float:
    return _opening_ratio(points_2d, INNER_LIPS, MOUTH_CORNERS)


_EYES = (
    (LEFT_EYE_LIDS, LEFT_EYE_CORNERS, LEFT_EYE_UPPER, LEFT_EYE_LOWER),
    (RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
)
"""Per eye: lid pair, corner pair, upper and lower lid contours (corner to corner)."""


def _similarity_2d(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2×3 least-squares similarity mapping `target` points onto `source` points."""
    rows = []
    rhs = []
    for (tx, ty), (sx, sy) in zip(target, source, strict=True):
        rows += [[tx, -ty, 1.0, 0.0], [ty, tx, 0.0, 1.0]]
        rhs += [sx, sy]
    a, b, c, d = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, c], [b, a, d]])


class MeshwarpRenderer:
    """AvatarRenderer of the built-in backend (no weights, CPU, ~ms per frame)."""

    def __init__(self, topology: FaceTopology | None = None) -> None:
        self.topology = topology or face_topology()
        self._detector: LandmarkDetector | None = None
        self._source: _Source | None = None
        self._reference: Motion | None = None
        self._triangles = self.topology.triangles

    # -- source --------------------------------------------------------------------------
    def set_source(self, image_rgb: np.ndarray) -> None:
        image = _check_image(image_rgb)
        if self._detector is None:
            self._detector = LandmarkDetector(max_faces=2, video_mode=False)
        faces = self._detector.detect(image)
        if not faces:
            raise NoFaceError("no face found in the source portrait; use a clear frontal photo")
        if len(faces) > 1:
            logger.info("source has %d faces; animating the largest", len(faces))
        self.set_source_landmarks(image, faces[0])

    def set_source_landmarks(self, image: np.ndarray, face: FaceLandmarks) -> None:
        """Like `set_source` with landmarks already detected (e.g. by the caller's detector)."""
        image = _check_image(image)
        if face.size() < MIN_SOURCE_FACE_PX:
            raise NoFaceError(
                f"the source face is only {face.size():.0f} px across; "
                f"at least {MIN_SOURCE_FACE_PX:.0f} px is needed"
            )
        all_points = face.points.astype(np.float64)
        points = all_points[:NUM_MESH_VERTICES]
        oval = self.topology.oval
        fit = fit_face(points, self.topology)
        skirt = build_skirt(points[oval, :2], oval, NUM_MESH_VERTICES, fit.shape[oval])
        # Vertex list: face, skirt rings, the two iris vertices, then their inner rings
        # (eye fans drawn last).
        num_vertices = NUM_MESH_VERTICES + len(skirt.vertices)
        fans = fan_triangles((num_vertices, num_vertices + 1), num_vertices + 2)
        self._triangles = np.concatenate([skirt.triangles, self.topology.triangles, fans])
        irises = iris_offsets(all_points)
        iris_points = all_points[list(IRIS_CENTRES), :2]
        loop = self.topology.mouth_loop
        self._source = _Source(
            image=image.copy(),  # the caller may reuse its buffer
            fit=fit,
            points=points[:, :2],
            skirt=skirt,
            vertices=np.concatenate(
                [
                    points[:, :2],
                    skirt.vertices,
                    iris_points,
                    core_sources(points[:, :2], iris_points),
                ]
            ),
            lip_rgb=lip_colour(image, points[loop, :2]),
            mouth_ratio=_mouth_ratio(points[:, :2]),
            lid_rgb=(
                sample_colour(image, points[list(LID_SKIN["left"]), :2]),
                sample_colour(image, points[list(LID_SKIN["right"]), :2]),
            ),
            eye_ratios=(
                _opening_ratio(points[:, :2], LEFT_EYE_LIDS, LEFT_EYE_CORNERS),
                _opening_ratio(points[:, :2], RIGHT_EYE_LIDS, RIGHT_EYE_CORNERS),
            ),
            irises=iris_points,
            iris_along=irises[:, 0],
            iris_fraction=lid_fractions(all_points, irises),
        )
        self._reference = None

    def reset_reference(self) -> None:
        self._reference = None

    @property
    def prepared_source(self) -> _Source:
        """What `set_source` computed (read by `browser_source` for the browser renderer)."""
        return self._require_source()

    # -- per frame -----------------------------------------------------------------------
    def target_mesh(self, motion: Motion, controls: Controls) -> tuple[np.ndarray, np.ndarray]:
        """Target (468, 2) pixel positions and (468,) depths (towards the viewer)."""
        points, depth, _, _ = self._target_mesh(motion, controls)
        return points, depth

    def _target_mesh(
        self, motion: Motion, controls: Controls
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, SimilarityFit]:
        """`target_mesh`, each eye's (along, across) gaze change (lpstream.meshwarp.gaze) and
        the target head pose (face units to model-frame pixels)."""
        source = self._require_source()
        numbers = [motion.pitch, motion.yaw, motion.roll, motion.scale, *motion.t, *motion.exp.flat]
        if not np.isfinite(numbers).all() or motion.scale <= 0:
            raise ValueError("motion has non-finite values or a non-positive scale")
        if self._reference is None:
            self._reference = motion.copy()
        reference = self._reference
        topology = self.topology

        delta = (motion.exp - reference.exp).astype(np.float64)
        gaze = take_gaze(delta)
        shape = source.fit.shape
        if controls.eye_open is not None:
            delta = set_eye_openness(shape, delta, controls.eye_open)
        if controls.lip_open is not None:
            delta = set_lip_openness(shape, delta, controls.lip_open)
        target_shape = shape + topology.propagation @ delta

        gain = float(controls.head_motion)
        driver_now = rotation_from_euler(motion.pitch, motion.yaw, motion.roll)
        driver_ref = rotation_from_euler(reference.pitch, reference.yaw, reference.roll)
        # The driver's change of pose is applied in the camera frame. (LivePortrait's
        # `relative_motion` formula, read for column vectors, applies it in the head frame,
        # R_s · R_d,0ᵀ · R_d,i.
        # For a 2-D warp the camera frame follows the driver better as measured on the output:
        # pearl_earring driven by d3, pitch r = 0.69 vs 0.53, yaw 0.99 vs 0.99; carphone on
        # the astronaut, yaw 0.96 vs 0.91.)
        rotation = scale_rotation(driver_now @ driver_ref.T, gain) @ source.fit.pose.rotation
        scale_ratio = (motion.scale / max(reference.scale, 1e-6)) ** gain
        scale = source.fit.pose.scale * scale_ratio
        # Driver translation in its face sizes, re-expressed in source face sizes (pixels).
        shift = (motion.t[:2] - reference.t[:2]) / max(reference.scale, 1e-6)
        face_px = source.fit.pose.scale
        translation = source.fit.pose.translation.copy()
        translation[0] += gain * shift[0] * face_px
        translation[1] -= gain * shift[1] * face_px  # model frame has y up

        model = scale * target_shape @ rotation.T + translation
        image_points = model_to_image_frame(model)
        return image_points[:, :2], model[:, 2], gaze, SimilarityFit(scale, rotation, translation)

    def render(self, motion: Motion, controls: Controls | None = None) -> np.ndarray:
        controls = controls or Controls()
        source = self._require_source()
        target, depth, gaze, pose = self._target_mesh(motion, controls)
        irises = iris_targets(target, source.iris_along, source.iris_fraction, gaze)

        contour_motion = (target - source.points)[self.topology.oval]
        skirt = source.skirt
        if controls.stitching:
            background = _IDENTITY
            background_motion = np.zeros_like(skirt.rings)
        else:
            # Unstitched: the whole picture follows the head rigidly (seams at the frame edge).
            rigid = self.topology.canonical.rigid_ids
            background = _similarity_2d(source.points[rigid], target[rigid])
            forward = np.linalg.inv(np.vstack([background, [0.0, 0.0, 1.0]]))[:2]
            background_motion = skirt.rings @ forward[:, :2].T + forward[:, 2] - skirt.rings
        anchors = skirt.anchors
        # The anchors follow the head's turn and shift but not its change of scale: the
        # driver's scale is fitted to the landmarks, which a wide mouth or wide eyes spread
        # too, and hair scaled about the face centre slid outwards (measured in the
        # stitching module's RINGS note).
        rest = source.fit.pose
        skirt_pose = SimilarityFit(rest.scale, pose.rotation, pose.translation)
        head_motion = model_to_image_frame(skirt_pose.apply(anchors) - rest.apply(anchors))
        rings = skirt.targets(contour_motion, background_motion, head_motion[..., :2])
        cores = core_targets(target, irises, source.points, source.irises)
        target_vertices = np.concatenate([target, rings, irises, cores])

        # Skirt first (behind), then face triangles far to near so the nearer surface wins,
        # then the eye fans over the face's own eye triangles.
        num_skirt = len(skirt.triangles)
        num_face = len(self.topology.triangles)
        face_depth = depth[self.topology.triangles].mean(axis=1)
        order = np.concatenate(
            [
                np.arange(num_skirt),
                num_skirt + np.argsort(face_depth),
                np.arange(num_skirt + num_face, len(self._triangles)),
            ]
        )
        frame = warp_image(
            source.image, source.vertices, target_vertices, self._triangles, order, background
        )
        self._paint_mouth(frame, target)
        self._paint_lids(frame, target)
        return frame

    def _paint_lids(self, frame: np.ndarray, target: np.ndarray) -> None:
        source = self._require_source()
        for (lids, corners, upper, lower), skin, source_ratio in zip(
            _EYES, source.lid_rgb, source.eye_ratios, strict=True
        ):
            strength = lid_cover_strength(_opening_ratio(target, lids, corners), source_ratio)
            opening = target[list(upper + lower[-2:0:-1])]
            paint_lid(frame, opening, target[list(lower)], strength, skin)

    def _paint_mouth(self, frame: np.ndarray, target: np.ndarray) -> None:
        source = self._require_source()
        ratio = _mouth_ratio(target)
        if ratio <= source.mouth_ratio:
            return
        strength = min((ratio - source.mouth_ratio) / CAVITY_FULL_AT, 1.0)
        # A source that already shows its teeth/mouth interior has real texture to stretch
        # into the opening: paint over it only partly.
        strength *= 1.0 - min(source.mouth_ratio / SOURCE_OPEN_RATIO, 1.0) * 0.6
        opening = float(np.linalg.norm(target[INNER_LIPS[0]] - target[INNER_LIPS[1]]))
        polygon = target[self.topology.mouth_loop]
        paint_cavity(frame, polygon, opening, strength, source.lip_rgb)

    def _require_source(self) -> _Source:
        if self._source is None:
            raise RuntimeError("call set_source() before render()")
        return self._source

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
