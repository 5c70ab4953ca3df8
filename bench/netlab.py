"""Call quality over impaired links: keypoint mode against a VP8 camera call of the same clip.

Each scenario builds the lab of `tests/netlab.py` (client and node namespaces through a
user-space impairment forwarder; caps with `tbf`), runs `python -m lpstream.serve` (meshwarp)
in the node namespace and two aiortc pages (`tests/netlab_peer.py`): by default (`--link
own`) ann in the client namespace and bob beside the node, so the impaired link is one user's
own and each stream crosses it once (ann's up or ann's down); `--link shared` puts both pages
in the client namespace, so every stream crosses it twice (page → node → page). Measured per mode:
avatar frames shown per second, the longest freeze, camera-to-avatar latency (keypoints only:
send → decode on one clock), recovery after a 5 s blackout, and — keypoints only — that no
shown motion is further from what was sent than the codec's quantiser bound. Both pages talk
all the time (60 ms Opus packets, no DTX): seconds of the other's voice arriving per second
and the longest hole in it, counted at the page's RTP receiver.

Run (root): .venv/bin/python bench/netlab.py  → bench/results/netlab.json, netlab.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.netlab import Impairment, Lab, unavailable  # noqa: E402
from tests.netlab_peer import figures  # noqa: E402

RESULTS = HERE / "results"
PORT = 8080
SCENARIOS: dict[str, Impairment] = {
    "clean": Impairment(),
    "loss 10 %": Impairment(loss=0.10),
    "loss 30 %": Impairment(loss=0.30),
    "RTT 150±30 ms": Impairment(delay_ms=75, jitter_ms=15),
    "cap 256 kbit/s": Impairment(rate_kbit=256),
    "cap 64 kbit/s": Impairment(rate_kbit=64),
    "cap 32 kbit/s": Impairment(rate_kbit=32),
    "blackout 5 s": Impairment(blackout_s=5.0),
}
MODES = ("keypoints", "camera")


def run_call(
    mode: str,
    impairment: Impairment,
    window_s: float = 10.0,
    blackout_at_s: float = 3.0,
    logs: Path | None = None,
    link: str = "shared",
) -> dict[str, Any]:
    """One call through the lab; its figures (`tests.netlab_peer.figures`). `link`: "shared"
    puts both pages behind the impaired link (each stream crosses it twice), "own" only ann
    (bob beside the node): the link is one user's, as a cap of 64 kbit/s means."""
    logs = logs or Path(tempfile.mkdtemp(prefix="netlab-"))
    if impairment.blackout_s:  # room to recover after it
        window_s = max(window_s, blackout_at_s + impairment.blackout_s + 7)
    with Lab(impairment, logs=logs) as lab:
        node = lab.start(
            "node", sys.executable, "-m", "lpstream.serve", "--host", lab.node_ip,
            "--port", str(PORT), "--backend", "meshwarp", "--node-id", "lab",
            log="node",
        )  # fmt: skip
        lab.wait_for("node", "Ctrl-C", node, 60)
        client = lab.start(
            "client", sys.executable, "-m", "tests.netlab_peer", mode,
            f"ws://{lab.node_ip}:{PORT}/ws", "--window", str(window_s),
            *(["--far-ns", lab.ns("node")] if link == "own" else []),
            log="client",
        )  # fmt: skip
        lab.wait_for("client", "steady", client, 90)
        lab.impair()
        if impairment.blackout_s:
            time.sleep(blackout_at_s + 1.0)  # the window starts 1 s after `steady`
            lab.blackout()
        code = client.wait(timeout=window_s + 60)
        output = lab.log("client").read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"{mode} client failed ({code}):\n{output[-3000:]}")
        report = json.loads(output.strip().splitlines()[-1])
        steady = "steady True" in output
        return {"steady": steady, **figures(report, lab.blackouts())}


def plot(results: list[dict[str, Any]], path: Path, link: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["scenario"] for r in results))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for offset, mode in ((-width / 2, "keypoints"), (width / 2, "camera")):
        rows = {r["scenario"]: r["worst"] for r in results if r["mode"] == mode}
        xs = [i + offset for i in range(len(names))]
        label = "keypoints" if mode == "keypoints" else "VP8 camera"
        axes[0].bar(xs, [rows.get(n, {}).get("fps", 0) for n in names], width, label=label)
        axes[1].bar(
            xs, [rows.get(n, {}).get("longest_freeze_s", 0) for n in names], width, label=label
        )
    titles = ("avatar frames shown / s (worse page)", "longest freeze, s")
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
        axis.set_title(title)
        axis.legend()
    axes[1].set_yscale("log")
    behind = "ann's own link" if link == "own" else "both pages behind it"
    figure.suptitle(f"lpstream netlab: quality vs. link, keypoints vs. VP8 ({behind})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | mode | fps | longest freeze s | latency p50/p95 ms | recovery s"
        " | corrupted | voice heard s/s | longest voice gap s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        w = {"longest_freeze_s": "failed", **r["worst"]}
        latency = f"{w['latency_ms_p50']}/{w['latency_ms_p95']}" if w.get("latency_ms_p50") else "–"
        lines.append(
            f"| {r['scenario']} | {r['mode']} | {w['fps']} | {w['longest_freeze_s']} | "
            f"{latency} | {w.get('recovery_s', '–')} | {w.get('corrupted', '–')} | "
            f"{w.get('audio_s_per_s', '–')} | {w.get('audio_longest_gap_s', '–')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument(
        "--link", choices=("own", "shared"), default="own",
        help="own: only ann behind the impaired link (bob beside the node); shared: both",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS / "netlab.json")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"netlab skipped: {reason}")
        return 0
    results = []
    for name in args.scenarios:
        for mode in args.modes:
            print(f"== {name} / {mode}", flush=True)
            try:
                figures = run_call(mode, SCENARIOS[name], args.window, link=args.link)
            except (RuntimeError, AssertionError) as error:
                figures = {"error": str(error)[-1500:], "worst": {"fps": 0.0}}
                print(figures["error"][-600:], flush=True)
            result = {"scenario": name, "mode": mode, "link": asdict(SCENARIOS[name]), **figures}
            print(json.dumps(result["worst"]), flush=True)
            results.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    summary = table(results)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "netlab",
                "window_s": args.window,
                "link": args.link,
                "notes": [
                    "link own: ann behind the impaired link, bob beside the node (each stream"
                    " crosses the link once, up or down); shared: both pages behind it (twice)",
                    "loss applies to UDP only; delay, jitter, blackout and caps to everything",
                    "calls join on a clean link, loss/delay/jitter start 1 s before the window;"
                    " caps hold from the start",
                    "worst = the worse of the two pages; VP8 latency and corruption not measured",
                ],
                "results": results,
            },
            indent=1,
        )
        + "\n"
    )
    plot(results, args.output.with_suffix(".png"), args.link)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
