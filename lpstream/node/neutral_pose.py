"""What a tile shows when its sender's face is gone: the portrait's rest pose, not a frozen
mid-word frame — and, if the viewer wants it, a mouth that moves with the sender's voice.

The face is *gone* after a NO_FACE packet (the sender's tracker lost it, or its camera is
disabled and shows black) or when no motion packet came for `SILENCE_S` (the sender's camera
ended, or its page stopped sending). The tile then eases, over `EASE_S`, from the last motion
to the *rest* motion — the first motion the renderer took as its reference
(`lpstream.backend.AvatarRenderer.render`), which it renders as the portrait itself: mouth as
in the portrait (closed, in a portrait), eyes open, head as in the portrait. When motion comes
back, it eases the other way. Motions are blended field by field (angles the short way round),
which both backends' renderers apply linearly or nearly so, so nothing here asks which backend
runs.

While the tile is neutral and the viewer's `Controls.voice_mouth` is on, `VoiceMouth` turns the
sender's voice level (RMS, dBov: the RTP audio-level header extension, RFC 6464, on the node;
an AnalyserNode on the tile's audio in the page) into a target lip-open ratio
(`Controls.lip_open`): louder opens wider, monotonically. It is synthesised, not the sender's
mouth, so the page labels the tile "mouth follows voice" while it acts (`Pose.voice`).

`web_client/neutral_pose.js` is the same code for the page's own renderer, constant for
constant (`tests/test_neutral_pose.py` runs both on one script of events).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lpstream.backend import Controls
from lpstream.motion import Motion

EASE_S = 0.25
"""Time to ease between the live motion and the rest pose (each way)."""
SILENCE_S = 1.0
"""No motion packet for this long means the sender stopped sending (camera off or ended): a
sender sends one per camera frame, face or not. Long enough that a sender slowed to 2 fps by a
loaded machine, or a burst of lost packets, does not flicker its avatar to rest."""
TICK_S = 0.04
"""Render period while easing or while the mouth follows the voice (25 fps)."""
VOICE_SILENT_DBOV = 50.0
"""A voice this quiet or quieter (−dBov, RMS) leaves the mouth closed."""
VOICE_LOUD_DBOV = 20.0
"""A voice this loud or louder opens the mouth fully."""
VOICE_LIP_MAX = 0.35
"""Lip-open ratio (inner-lip gap / mouth width) of a fully open voice mouth: an open vowel."""
VOICE_ATTACK_S = 0.03
"""Time constant of the opening following a louder voice (syllable onsets are fast)..."""
VOICE_RELEASE_S = 0.08
"""...and of it closing after a quieter one (a jaw closes more slowly than sound stops)."""
VOICED_FRACTION = 0.05
"""An opening above this fraction of the full one counts as voice, for the label."""
LABEL_HOLD_S = 1.0
"""The label stays this long after the last voiced moment (no flicker between words)."""


def voice_fraction(level_dbov: float | None) -> float:
    """How far a voice at `level_dbov` (0 loudest … 127 silent) opens the mouth, 0 … 1."""
    if level_dbov is None:
        return 0.0
    span = VOICE_SILENT_DBOV - VOICE_LOUD_DBOV
    return min(max((VOICE_SILENT_DBOV - level_dbov) / span, 0.0), 1.0)


def dbov_of_rms(rms: float) -> float:
    """The RFC 6464 level (−dBov, 0 … 127) of a signal whose RMS is `rms` of full scale."""
    if rms <= 0.0:
        return 127.0
    return min(max(-20.0 * float(np.log10(rms)), 0.0), 127.0)


def _short_way(a: float, b: float) -> float:
    return (b - a + 180.0) % 360.0 - 180.0


def blend_motion(live: Motion, rest: Motion, weight: float) -> Motion:
    """`live` moved `weight` (0 … 1) of the way to `rest`, field by field."""
    if weight <= 0.0:
        return live
    if weight >= 1.0:
        return rest

    def mix(a: float, b: float) -> float:
        return a + weight * (b - a)

    eye = None
    if live.eye_ratio is not None and rest.eye_ratio is not None:
        eye = live.eye_ratio + weight * (rest.eye_ratio - live.eye_ratio)
    lip = None
    if live.lip_ratio is not None and rest.lip_ratio is not None:
        lip = mix(live.lip_ratio, rest.lip_ratio)
    return Motion(
        live.pitch + weight * _short_way(live.pitch, rest.pitch),
        live.yaw + weight * _short_way(live.yaw, rest.yaw),
        live.roll + weight * _short_way(live.roll, rest.roll),
        live.t + weight * (rest.t - live.t),
        mix(live.scale, rest.scale),
        live.exp + weight * (rest.exp - live.exp),
        eye,
        lip,
    )


def smoothstep(x: float) -> float:
    return x * x * (3.0 - 2.0 * x)


class VoiceMouth:
    """Voice level → mouth opening (0 … 1), smoothed with a fast attack and a slower release."""

    def __init__(self) -> None:
        self.opening = 0.0
        self.voiced_at: float | None = None
        self._at: float | None = None

    def update(self, now: float, level_dbov: float | None) -> float:
        target = voice_fraction(level_dbov)
        dt = 0.0 if self._at is None else min(max(now - self._at, 0.0), 1.0)
        self._at = now
        tau = VOICE_ATTACK_S if target > self.opening else VOICE_RELEASE_S
        self.opening += (target - self.opening) * (1.0 - float(np.exp(-dt / tau)))
        if self.opening < 1e-3 and target == 0.0:
            self.opening = 0.0
        if target > VOICED_FRACTION:
            self.voiced_at = now
        return self.opening

    def voiced(self, now: float) -> bool:
        return self.voiced_at is not None and now - self.voiced_at < LABEL_HOLD_S


@dataclass(frozen=True)
class Pose:
    """What to render now."""

    motion: Motion
    controls: Controls
    neutral: float
    """0: the live motion … 1: the rest pose (after easing)."""
    voice: bool
    """The mouth follows the voice now (the tile says so)."""

    def key(self) -> tuple[float, Controls]:
        """Equal keys of one stream render the same frame (unless new motion came)."""
        return (self.neutral, self.controls)


class NeutralPose:
    """One tile's choice between the live motion and the rest pose, over time.

    Feed it every decoded motion (`on_motion`), every NO_FACE (`on_no_face`) and each
    reference reset of the renderer (`reset_reference`), then ask `pose(now, ...)` before each
    render. `next_tick(now)` says when to ask again without new input (None: not before it).
    """

    def __init__(self, ease_s: float = EASE_S, silence_s: float = SILENCE_S) -> None:
        self.ease_s = ease_s
        self.silence_s = silence_s
        self.live: Motion | None = None
        self.rest: Motion | None = None
        self._face_at: float | None = None
        """When the last face motion arrived (None: a NO_FACE came after it)."""
        self._weight = 0.0
        self._at: float | None = None
        self.voice = VoiceMouth()

    def on_motion(self, motion: Motion, now: float) -> None:
        self.live = motion
        self._face_at = now

    def on_no_face(self, now: float) -> None:
        self._face_at = None

    def reset_reference(self) -> None:
        """The renderer takes its next motion as the reference: so does the rest pose."""
        self.rest = None

    def face_present(self, now: float) -> bool:
        return self._face_at is not None and now - self._face_at < self.silence_s

    def pose(self, now: float, controls: Controls, voice_level_dbov: float | None) -> Pose | None:
        """The motion and controls to render at `now` (None: no motion yet)."""
        live = self.live
        if live is None:
            return None
        if self.rest is None:
            self.rest = live.copy()  # what the renderer takes as its reference
        target = 0.0 if self.face_present(now) else 1.0
        dt = 0.0 if self._at is None else min(max(now - self._at, 0.0), self.ease_s)
        self._at = now
        step = dt / self.ease_s if self.ease_s > 0 else 1.0
        if target > self._weight:
            self._weight = min(self._weight + step, target)
        else:
            self._weight = max(self._weight - step, target)
        weight = smoothstep(self._weight)
        motion = blend_motion(live, self.rest, weight)
        opening = self.voice.update(now, voice_level_dbov if controls.voice_mouth else None)
        voice = controls.voice_mouth and weight > 0.0 and self.voice.voiced(now)
        if controls.voice_mouth and weight > 0.0 and opening > 0.0:
            lip = weight * opening * VOICE_LIP_MAX
            if controls.lip_open is not None:
                lip = max(lip, controls.lip_open)
            controls = replace(controls, lip_open=lip)
        return Pose(motion, controls, weight, voice)

    def next_tick(self, now: float, controls: Controls) -> float | None:
        """Seconds until the pose may change with no new input, or None."""
        if self.live is None:
            return None
        present = self.face_present(now)
        if (present and self._weight > 0.0) or (not present and self._weight < 1.0):
            return TICK_S  # easing
        if not present and controls.voice_mouth:
            return TICK_S  # the voice may move the mouth
        if present:
            assert self._face_at is not None
            return max(self._face_at + self.silence_s - now, 0.0) + 1e-3
        return None
