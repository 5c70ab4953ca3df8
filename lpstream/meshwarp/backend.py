"""The built-in mesh-warp backend, described: weight-free, so it can always run."""

from __future__ import annotations

import numpy as np

from lpstream.backend import AvatarRenderer, BackendOptions, MotionSender
from lpstream.protocol.profiles import LANDMARKS, CodecProfile


class MeshwarpBackend:
    """Backend: landmark motion on the sender, mesh warp on the receiver (no weights)."""

    name = "meshwarp"
    aliases: tuple[str, ...] = ("builtin",)
    codec_profile: CodecProfile = LANDMARKS
    runs_in_browser = True  # web_client/sender and web_client/render implement both stages

    def unavailable_reason(self, options: BackendOptions) -> str | None:
        return None  # needs nothing beyond the installed packages

    def create_sender(self, options: BackendOptions) -> MotionSender:
        from lpstream.meshwarp.sender import MeshwarpSender

        return MeshwarpSender()

    def create_renderer(self, options: BackendOptions) -> AvatarRenderer:
        from lpstream.meshwarp.renderer import MeshwarpRenderer

        return MeshwarpRenderer()

    def browser_source(self, image_rgb: np.ndarray) -> dict[str, object]:
        from lpstream.meshwarp.browser_source import browser_source
        from lpstream.meshwarp.renderer import MeshwarpRenderer

        renderer = MeshwarpRenderer()
        try:
            renderer.set_source(image_rgb)
            return browser_source(renderer)
        finally:
            renderer.close()


BACKEND = MeshwarpBackend()
