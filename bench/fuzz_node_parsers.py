"""Fuzz the node's and the signaling server's parsers of outside bytes; report to bench/results/.

`.venv/bin/python bench/fuzz_node_parsers.py [count]` (default 1 000 000 inputs; with
`bench/fuzz_protocol.py`'s codec entry points that is well over a million in total). Each
entry point has one documented error type, and only that may escape:

| entry point | input | documented error |
|---|---|---|
| `browser_control` (message, sliders, portrait header) | text | `ControlMessageError` |
| link framing (`framing.unframe_packet`, `framing.unpack_batch`) | bytes | `ValueError` |
| link JSON (`NodeLink._json_message`: `camera`, `face`) | text | `ValueError` |
| signaling messages (`signaling.messages.parse_message`) | text | `SignalingError` |
| image headers (`portrait_image.declared_size`) | bytes | none: a size or None |

Inputs are random bytes and text, and mutations (flips, cuts, insertions, splices, deep
nesting, huge numbers) of real messages.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from lpstream.node import browser_control, framing, portrait_image  # noqa: E402
from lpstream.node.browser_control import ControlMessageError, PortraitHeader  # noqa: E402
from lpstream.node.link import LinkEvents, NodeLink  # noqa: E402
from signaling.errors import SignalingError  # noqa: E402
from signaling.messages import parse_message as parse_signaling  # noqa: E402

DEFAULT_COUNT = 1_000_000

TEXT_SEEDS = [
    '{"type":"controls","eye":0.4,"lip":null,"head":1.2,"stitching":true}',
    '{"type":"portrait","bytes":12345,"sha256":"' + "ab" * 32 + '"}',
    '{"type":"portrait-end"}',
    '{"type":"ping","t":17}',
    '{"type":"face","track":3}',
    '{"type":"camera","id":"p1-abc","kbps":812.5}',
    '{"type":"face","id":"p1-abc","track":2}',
    '{"type":"join","room":"room1","name":"ann","node":"A"}',
    '{"type":"register-node","node":"A","token":"x"}',
    '{"type":"signal","to":"node:A","data":{"kind":"offer","sdp":"v=0"}}',
    '{"type":"leave"}',
]
SPICE = ["[" * 3000, "1e999", "-1e999", "9" * 500, "NaN", "Infinity", '"\\ud800"', "\x00", "null"]


def _image_seeds() -> list[bytes]:
    seeds = []
    for extension in (".jpg", ".png"):
        ok, data = cv2.imencode(extension, np.zeros((40, 56, 3), np.uint8))
        assert ok
        seeds.append(data.tobytes())
    return seeds


def _mutate(rng: random.Random, data: bytearray, seeds: list[bytes]) -> bytearray:
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.45 and data:
            data[rng.randrange(len(data))] = rng.randint(0, 255)
        elif op < 0.6:
            del data[rng.randint(0, len(data)) :]
        elif op < 0.8:
            position = rng.randint(0, len(data))
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        else:
            other = rng.choice(seeds)
            data = data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]
    return data


def make_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 80)).decode("latin-1")
    seed = rng.choice(TEXT_SEEDS)
    if roll < 0.4:  # a value replaced by something hostile
        parsed = json.loads(seed)
        key = rng.choice(list(parsed))
        text = json.dumps(parsed).replace(json.dumps(parsed[key]), rng.choice(SPICE), 1)
        return text if rng.random() < 0.8 else text + "]" * rng.randint(0, 3000)
    raw = _mutate(rng, bytearray(seed.encode()), [s.encode() for s in TEXT_SEEDS])
    return bytes(raw).decode("utf-8", "replace")


def make_bytes(rng: random.Random, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randint(0, 300))
    return bytes(_mutate(rng, bytearray(rng.choice(seeds)), seeds))


def _control(text: str) -> None:
    message = browser_control.parse_message(text)
    browser_control.parse_controls(message)
    PortraitHeader.parse(message, 4 << 20)


def _declared_size(data: bytes) -> None:
    size = portrait_image.declared_size(data)
    if size is not None and not (
        len(size) == 2 and all(isinstance(v, int) and 0 <= v < 1 << 32 for v in size)
    ):
        raise AssertionError(f"declared_size returned {size!r}")


def entry_points() -> dict[str, tuple[str, Callable[[Any], Any], type[Exception] | None]]:
    nothing = lambda *args: None  # noqa: E731
    link = NodeLink.__new__(NodeLink)  # only its parser: no peer connection, no loop
    link.events = LinkEvents(nothing, nothing, nothing, nothing, nothing)
    return {
        "browser_control": ("text", _control, ControlMessageError),
        "framing.unframe_packet": ("bytes", framing.unframe_packet, ValueError),
        "framing.unpack_batch": ("bytes", framing.unpack_batch, ValueError),
        "NodeLink._json_message": ("text", link._json_message, ValueError),
        "signaling.parse_message": ("text", parse_signaling, SignalingError),
        "portrait_image.declared_size": ("image", _declared_size, None),
    }


def run(count: int, seed: int = 20240611) -> dict[str, Any]:
    rng = random.Random(seed)
    images = _image_seeds()
    frames = [
        framing.frame_packet("p1-abc", b"\x01\x02\x03"),
        framing.frame_packet("", b""),
        framing.pack_item("p1-abc", b"\x01\xc0ab") + framing.pack_item("p2-d", b"\x01\x30"),
    ]
    targets = entry_points()
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in targets}
    failures: list[dict[str, str]] = []
    started = time.perf_counter()
    for _ in range(count):
        text = make_text(rng)
        inputs = {"text": text, "bytes": make_bytes(rng, frames), "image": make_bytes(rng, images)}
        for name, (kind, parse, documented) in targets.items():
            data = inputs[kind]
            try:
                parse(data)
                outcomes[name]["accepted"] += 1
            except Exception as error:  # the point of a fuzzer: catch everything else
                if documented is not None and isinstance(error, documented):
                    outcomes[name]["documented_error"] += 1
                    continue
                outcomes[name]["unexpected"] += 1
                if len(failures) < 20:
                    failures.append(
                        {
                            "entry_point": name,
                            "input": repr(data)[:400],
                            "error": repr(error)[:300],
                            "traceback": traceback.format_exc(limit=4),
                        }
                    )
    return {
        "inputs": count,
        "calls": count * len(targets),
        "seconds": round(time.perf_counter() - started, 1),
        "unexpected_exceptions": sum(c["unexpected"] for c in outcomes.values()),
        "per_entry_point": {name: dict(c) for name, c in outcomes.items()},
        "failures": failures,
    }


def main(argv: list[str]) -> int:
    result = run(int(argv[0]) if argv else DEFAULT_COUNT)
    out = ROOT / "bench" / "results" / "fuzz_node_parsers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    return 1 if result["unexpected_exceptions"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
