"""Opus for speech on a thin link, as SDP says it: what each end's encoder should do.

A WebRTC encoder takes its Opus settings from the *remote* description: the page's encoder
follows the node's answer (the node forwards the page's packets unchanged, so that is what
every listener receives), and the node's offer-side wishes ride in the page's offer
(web_client/call.js applies the same table, `OPUS_SPEECH` there).

- `maxaveragebitrate=16000`: wideband speech (SILK) is clear at 16 kbit/s;
- `ptime=60`: 60 ms packets carry the same sound in a third of the packets of the default
  20 ms, and at this bitrate the headers (IP + UDP + SRTP ≈ 50 B a packet) cost as much as
  the speech: 20 ms → ≈ 36 kbit/s on the wire, 60 ms → ≈ 23 kbit/s. It adds 40 ms of
  packetisation delay, well within a call's mouth-to-ear budget;
- `usedtx=1`: a silent microphone sends one comfort-noise packet every 400 ms instead of
  a stream — in a room of four, three are silent most of the time;
- `useinbandfec=1`: a lost packet is rebuilt from a low-rate copy in the next one;
- `stereo=0`, `maxplaybackrate=16000`: one channel, no sound above 8 kHz to spend bits on.
"""

from __future__ import annotations

import re

OPUS_SPEECH: dict[str, str] = {
    "minptime": "10",
    "ptime": "60",
    "maxaveragebitrate": "16000",
    "maxplaybackrate": "16000",
    "sprop-maxcapturerate": "16000",
    "stereo": "0",
    "sprop-stereo": "0",
    "useinbandfec": "1",
    "usedtx": "1",
}
PTIME_MS = 60

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


def tune_opus(sdp: str, params: dict[str, str] | None = None, ptime_ms: int = PTIME_MS) -> str:
    """`sdp` with every Opus payload type's fmtp set to `params` (others kept), and
    `a=ptime` in each audio section."""
    wanted = OPUS_SPEECH if params is None else params
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    trailing = lines and lines[-1] == ""
    if trailing:
        lines.pop()
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out: list[str] = sections[0]
    for section in sections[1:]:
        out.extend(_tune_section(section, wanted, ptime_ms) if _is_audio(section) else section)
    return eol.join(out) + (eol if trailing else "")


def _is_audio(section: list[str]) -> bool:
    return section[0].startswith("m=audio")


def _tune_section(section: list[str], wanted: dict[str, str], ptime_ms: int) -> list[str]:
    opus = {m.group(1) for line in section if (m := _RTPMAP.match(line))}
    out: list[str] = []
    for line in section:
        if line.startswith("a=ptime:") or line.startswith("a=maxptime:"):
            continue
        payload = line[len("a=fmtp:") :].split(" ", 1)[0] if line.startswith("a=fmtp:") else ""
        if payload in opus:
            continue  # rewritten below, after its rtpmap
        out.append(line)
        match = _RTPMAP.match(line)
        if match:
            pt = match.group(1)
            existing = next((x for x in section if x.startswith(f"a=fmtp:{pt} ")), f"a=fmtp:{pt} ")
            params = _parse_fmtp(existing.split(" ", 1)[1])
            params.update(wanted)
            joined = ";".join(f"{k}={v}" for k, v in params.items())
            out.append(f"a=fmtp:{pt} {joined}")
    if opus:
        out.append(f"a=ptime:{ptime_ms}")
    return out


def _parse_fmtp(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.strip().partition("=")
        if key:
            params[key] = value
    return params
