"""MediaPipe's canonical face mesh, read from the landmarker model file we already ship.

`face_landmarker.task` is a zip holding `geometry_pipeline_metadata_landmarks.binarypb`: the
canonical 468-vertex face (centimetres, y up, z towards the viewer), its 898 triangles and the
weighted landmark subset MediaPipe itself uses for a rigid (Procrustes) head-pose fit. Reading
it from there gives us a real 3-D face model without any learned weights or a copied table.
The file is a protobuf message; the few fields we need are decoded by hand so the project
does not depend on a generated protobuf module.
"""

from __future__ import annotations

import functools
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpstream.errors import ModelFileError

GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
NUM_MESH_VERTICES = 468
"""The canonical mesh has no iris vertices (MediaPipe's points 468-477)."""

# Field numbers of mediapipe.face_geometry.GeometryPipelineMetadata and Mesh3d.
_METADATA_MESH, _METADATA_BASIS = 1, 2
_MESH_VERTEX_BUFFER, _MESH_INDEX_BUFFER = 3, 4
_BASIS_LANDMARK_ID, _BASIS_WEIGHT = 1, 2
_VERTEX_STRIDE = 5  # x, y, z, u, v


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face model (MediaPipe face geometry)."""

    vertices: np.ndarray
    """(468, 3) float64 in centimetres: x to the image's right, y up, z towards the viewer."""
    triangles: np.ndarray
    """(898, 3) int32 vertex indices."""
    rigid_ids: np.ndarray
    """Landmarks MediaPipe treats as rigid for head pose (forehead, nose, cheekbones)."""
    rigid_weights: np.ndarray
    """Their Procrustes weights, same length as `rigid_ids`."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, int, int | float | bytes]]:
    """(field number, wire type, value) of each field of one protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        value: int | float | bytes
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 1:
            value = struct.unpack_from("<d", data, pos)[0]
            pos += 8
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        elif wire_type == 5:
            value = struct.unpack_from("<f", data, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, wire_type, value


def _packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def parse_geometry_metadata(data: bytes) -> CanonicalFace:
    """Decode a GeometryPipelineMetadata message into a CanonicalFace."""
    vertex_buffer: list[float] = []
    index_buffer: list[int] = []
    rigid: list[tuple[int, float]] = []
    for number, _, value in _fields(data):
        if number == _METADATA_MESH and isinstance(value, bytes):
            for mesh_number, wire_type, mesh_value in _fields(value):
                if mesh_number == _MESH_VERTEX_BUFFER:
                    if wire_type == 2:
                        assert isinstance(mesh_value, bytes)
                        count = len(mesh_value) // 4
                        vertex_buffer.extend(struct.unpack(f"<{count}f", mesh_value))
                    else:
                        vertex_buffer.append(float(mesh_value))  # type: ignore[arg-type]
                elif mesh_number == _MESH_INDEX_BUFFER:
                    if wire_type == 2:
                        assert isinstance(mesh_value, bytes)
                        index_buffer.extend(_packed_varints(mesh_value))
                    else:
                        index_buffer.append(int(mesh_value))  # type: ignore[arg-type]
        elif number == _METADATA_BASIS and isinstance(value, bytes):
            entry = {n: v for n, _, v in _fields(value)}
            rigid.append((int(entry.get(_BASIS_LANDMARK_ID, 0)), float(entry[_BASIS_WEIGHT])))
    vertices = np.asarray(vertex_buffer, dtype=np.float64).reshape(-1, _VERTEX_STRIDE)[:, :3]
    triangles = np.asarray(index_buffer, dtype=np.int32).reshape(-1, 3)
    if vertices.shape[0] != NUM_MESH_VERTICES or not rigid or triangles.size == 0:
        raise ValueError(
            f"unexpected face geometry: {vertices.shape[0]} vertices, "
            f"{len(triangles)} triangles, {len(rigid)} rigid landmarks"
        )
    ids = np.array([i for i, _ in rigid], dtype=np.int32)
    weights = np.array([w for _, w in rigid], dtype=np.float64)
    return CanonicalFace(vertices, triangles, ids, weights)


@functools.lru_cache(maxsize=1)
def load_canonical_face(model_path: Path | None = None) -> CanonicalFace:
    """The canonical face from `face_landmarker.task` (found by lpstream.face by default)."""
    if model_path is None:
        from lpstream.face.landmarks import find_face_landmarker_model

        model_path = find_face_landmarker_model()
    try:
        with zipfile.ZipFile(model_path) as bundle:
            data = bundle.read(GEOMETRY_MEMBER)
        return parse_geometry_metadata(data)
    except (zipfile.BadZipFile, KeyError, ValueError, struct.error) as error:
        raise ModelFileError(
            f"{model_path} holds no readable {GEOMETRY_MEMBER} (face geometry): {error}"
        ) from error
