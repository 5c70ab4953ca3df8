"""The built-in, weight-free backend: landmark motion on the sender, mesh warp on the receiver.

Data flow: frame -> lpstream.face landmarks -> `face_motion` (pose fit against MediaPipe's
canonical face, 21 control-point deltas) -> Motion -> wire -> `renderer` (propagate the
deltas over the mesh with `topology`, re-pose, `stitching` skirt, `warp`, `mouth` cavity).
`backend.BACKEND` describes it to `lpstream.backend_registry`. The stages load on first use,
so the registry's `import lpstream.meshwarp.backend` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lpstream.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from lpstream.meshwarp.renderer import MeshwarpRenderer
    from lpstream.meshwarp.sender import MeshwarpSender

__all__ = ["MeshwarpRenderer", "MeshwarpSender"]

__getattr__ = lazy_exports(
    __name__,
    {
        "MeshwarpRenderer": "lpstream.meshwarp.renderer",
        "MeshwarpSender": "lpstream.meshwarp.sender",
    },
)
