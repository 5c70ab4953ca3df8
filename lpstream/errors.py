"""Error types with messages a user can act on."""


class LpstreamError(Exception):
    """Base class of every error lpstream raises on purpose."""


class WeightsError(LpstreamError):
    """LivePortrait weights are missing, incomplete or do not match the official layout."""


class NoFaceError(LpstreamError):
    """No face was found where one is required (e.g. the source portrait)."""


class ModelFileError(LpstreamError):
    """A bundled model file (e.g. the face landmarker) is missing or corrupt."""


class ImageError(LpstreamError):
    """An image could not be decoded or exceeds the allowed size."""


class BackendError(LpstreamError):
    """An unknown backend name, or a backend that cannot run in this installation."""
