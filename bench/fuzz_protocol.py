"""Fuzz every protocol entry point that parses network bytes; report to bench/results/.

`.venv/bin/python bench/fuzz_protocol.py [count]` (default 100 000 inputs). Inputs mix random
bytes, random bodies behind a valid version/kind header, and mutations (byte flips, cuts,
insertions, splices) of real packets: golden fixtures plus motion packets of the shared
LivePortrait motion. Decoder state is kept between inputs (hostile packets land on a primed
decoder, like on a live call) and reset every 500 inputs. The only acceptable exception is
ProtocolError; anything else is recorded with its input and the run exits non-zero.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lpstream.protocol import (  # noqa: E402
    MotionDecoder,
    MotionEncoder,
    PortraitReceiver,
    PortraitSender,
    ProtocolError,
    decode_message,
)
from lpstream.protocol.table_fit import load_clip_motions  # noqa: E402
from lpstream.protocol.wire import PROTOCOL_VERSION, Kind  # noqa: E402
from lpstream.shared_data import shared_dir  # noqa: E402
from tests.fixtures.protocol.make_fixtures import golden_packets, known_motion  # noqa: E402

DEFAULT_COUNT = 100_000
RESET_EVERY = 500


def motion_stream() -> list[bytes]:
    """Real motion packets (shared d5 clip, else the fixture motion), feedback every frame."""
    motion_file = shared_dir() / "motion" / "d5.npz"
    if motion_file.exists():
        motions = load_clip_motions(motion_file)[:60]
    else:
        motions = [known_motion(i) for i in range(60)]
    encoder, decoder = MotionEncoder(), MotionDecoder()
    packets = []
    for i, motion in enumerate(motions):
        packets.append(encoder.encode(motion, i * 33))
        decoder.decode(packets[-1])
        encoder.on_feedback(decoder.feedback())
    return packets


def seed_packets(stream: list[bytes]) -> list[bytes]:
    sender = PortraitSender(b"\x89PNG\r\n\x1a\n" + bytes(3000))
    return [*golden_packets().values(), *stream, sender.offer(), *sender.chunks()[:2]]


class Targets:
    """Fresh protocol state: a primed motion decoder, an encoder, portrait endpoints."""

    def __init__(self, stream: list[bytes]) -> None:
        # The decoder holds the references the seed delta packets point at, so mutated
        # deltas run the full field decoder rather than stopping at "reference missing".
        self.encoder, self.decoder = MotionEncoder(), MotionDecoder()
        for packet in stream:
            self.decoder.decode(packet)
        for i in range(6):
            self.encoder.encode(known_motion(i), i * 33)
        self.encoder.on_feedback(self.decoder.feedback())
        self.receiver = PortraitReceiver(cache_bytes=1 << 20, max_bytes=1 << 16)
        self.receiver.on_packet(PortraitSender(b"\x89PNG" + bytes(40)).offer())
        self.sender = PortraitSender(b"portrait")
        self.entry_points = {
            "decode_message": decode_message,
            "MotionDecoder.decode(fresh)": lambda p: MotionDecoder().decode(p),
            "MotionDecoder.decode(primed)": self._decode_and_feedback,
            "MotionEncoder.on_feedback": self.encoder.on_feedback,
            "PortraitReceiver.on_packet": self.receiver.on_packet,
            "PortraitSender.on_reply": self.sender.on_reply,
        }

    def _decode_and_feedback(self, packet: bytes) -> None:
        self.decoder.decode(packet)
        self.decoder.feedback()


def make_input(rng: random.Random, seeds: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        return rng.randbytes(rng.randint(0, 64 if rng.random() < 0.8 else 1200))
    if roll < 0.4:
        kind = rng.choice([int(k) for k in Kind] + [rng.randint(0, 255)])
        return bytes((PROTOCOL_VERSION, kind)) + rng.randbytes(rng.randint(0, 80))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randint(0, 255)
        elif op < 0.65:
            del data[rng.randint(0, len(data)) :]
        elif op < 0.8:
            position = rng.randint(0, len(data))
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif op < 0.9:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            data = data[: rng.randint(0, len(data))] + other[cut:]
        elif data:
            bit = rng.randrange(8 * len(data))
            data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data[:1300])


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else DEFAULT_COUNT
    rng = random.Random(20240601)
    stream = motion_stream()
    seeds = seed_packets(stream)
    targets = Targets(stream)
    outcomes: dict[str, Counter] = {name: Counter() for name in targets.entry_points}
    statuses: Counter = Counter()
    failures: list[dict] = []
    started = time.perf_counter()
    for index in range(count):
        if index % RESET_EVERY == 0:
            targets = Targets(stream)
        packet = make_input(rng, seeds)
        for name, entry in targets.entry_points.items():
            try:
                entry(packet)
                outcomes[name]["accepted"] += 1
                if name == "MotionDecoder.decode(primed)":
                    statuses[targets.decoder.last_status.value] += 1
            except ProtocolError:
                outcomes[name]["protocol_error"] += 1
            except Exception as error:  # the point of a fuzzer: catch everything else
                outcomes[name]["unexpected"] += 1
                if len(failures) < 20:
                    failures.append(
                        {
                            "entry_point": name,
                            "input_hex": packet.hex(),
                            "error": repr(error),
                            "traceback": traceback.format_exc(limit=4),
                        }
                    )
    seconds = time.perf_counter() - started
    result = {
        "inputs": count,
        "calls": count * len(targets.entry_points),
        "seconds": round(seconds, 1),
        "unexpected_exceptions": sum(c["unexpected"] for c in outcomes.values()),
        "per_entry_point": {name: dict(c) for name, c in outcomes.items()},
        "primed_decoder_statuses": dict(statuses),
        "seed_packets": len(seeds),
        "failures": failures,
    }
    out = ROOT / "bench" / "results" / "fuzz_protocol.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    return 1 if result["unexpected_exceptions"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
