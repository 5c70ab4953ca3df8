"""The source portrait's prepared geometry for the browser renderer (`web_client/render/`).

The browser cannot run MediaPipe on the portrait, so the node computes once per portrait
what `MeshwarpRenderer.set_source` computes and sends it next to the image as a small JSON
object; `MeshwarpGLRenderer.setSource(geometry, image)` takes it as is. Everything that does
not depend on the portrait (triangles, propagation, constants) is in the generated module
`web_client/render/meshwarp_data.js` instead (`lpstream.meshwarp.browser_data`).

Format (`BROWSER_SOURCE_FORMAT`, version 1), all numbers plain JSON, arrays flat row-major:

| key | value |
|---|---|
| `format`, `version` | `"lpstream-meshwarp-source"`, 1 |
| `width`, `height` | the portrait's size in pixels (the image sent with it must match) |
| `points` | 468·2 source pixel positions of the face vertices (x right, y down) |
| `shape` | 468·3 the face shape in the head-fixed frame, face units (y up) |
| `pose` | `{scale, rotation: 9 row-major, translation: 3}`: shape → model pixels (y up) |
| `rings` | R·K·2 stitching-skirt ring positions in pixels, innermost ring first |
| `lipRgb` | 3 mean RGB around the inner lips (mouth cavity colour) |
| `mouthRatio` | the source's inner-lip gap / mouth width |
| `lidRgb` | 2·3 lid skin RGB of the image-left, then image-right eye |
| `eyeRatios` | 2 the source's eye-opening ratios (image-left, image-right) |
| `faceBox` | 4 `[x0, y0, x1, y1]` bounding box of `points` (pixels) |
| `irisPoints` | 2·2 iris centres (image-left eye, image-right eye), pixels |
| `irisAlong` | 2 each iris's offset along its eye, eye widths (`lpstream.meshwarp.gaze`) |
| `irisFraction` | 2 each iris's place between upper (0) and lower (1) lid |

About 30 kB of JSON for any portrait size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpstream.meshwarp.renderer import MeshwarpRenderer

BROWSER_SOURCE_FORMAT = "lpstream-meshwarp-source"
BROWSER_SOURCE_VERSION = 1


def _flat(array: np.ndarray, digits: int) -> list[float]:
    return [round(float(value), digits) for value in np.asarray(array, dtype=np.float64).flat]


def browser_source(renderer: MeshwarpRenderer) -> dict[str, Any]:
    """The JSON-serialisable source geometry of `renderer`'s current source portrait.

    Call after `renderer.set_source(image)` (which finds the landmarks); send `image` along.
    """
    source = renderer.prepared_source
    height, width = source.image.shape[:2]
    pose = source.fit.pose
    points = source.points
    return {
        "format": BROWSER_SOURCE_FORMAT,
        "version": BROWSER_SOURCE_VERSION,
        "width": int(width),
        "height": int(height),
        # Pixel positions to 1e-5 px, face units to 1e-8: far below what a warp can show.
        "points": _flat(points, 5),
        "shape": _flat(source.fit.shape, 8),
        "pose": {
            "scale": float(pose.scale),
            "rotation": _flat(pose.rotation, 12),
            "translation": _flat(pose.translation, 6),
        },
        "rings": _flat(source.skirt.rings, 5),
        "lipRgb": _flat(source.lip_rgb, 4),
        "mouthRatio": float(source.mouth_ratio),
        "lidRgb": _flat(np.stack(source.lid_rgb), 4),
        "eyeRatios": [float(r) for r in source.eye_ratios],
        "faceBox": _flat(np.concatenate([points.min(axis=0), points.max(axis=0)]), 5),
        "irisPoints": _flat(source.irises, 5),
        "irisAlong": _flat(source.iris_along, 8),
        "irisFraction": _flat(source.iris_fraction, 8),
    }
