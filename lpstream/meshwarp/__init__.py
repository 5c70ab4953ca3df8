"""The built-in, weight-free backend: landmark motion on the sender, mesh warp on the receiver.

Data flow: frame -> lpstream.face landmarks -> `face_motion` (pose fit against MediaPipe's
canonical face, 21 control-point deltas) -> Motion -> wire -> `renderer` (propagate the
deltas over the mesh with `topology`, re-pose, `stitching` skirt, `warp`, `mouth` cavity).
"""

from lpstream.meshwarp.renderer import MeshwarpRenderer
from lpstream.meshwarp.sender import MeshwarpSender

__all__ = ["MeshwarpRenderer", "MeshwarpSender"]
