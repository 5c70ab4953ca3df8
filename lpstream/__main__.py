"""`python -m lpstream <command>`: serve, cert, animate, weights, export-onnx."""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("lpstream.serve", "run the call server (web client, signaling, WebRTC node)"),
    "cert": ("lpstream.tls", "write a self-signed TLS certificate for trying serve on a LAN"),
    "animate": ("lpstream.animate", "animate a source portrait from a driving video, file to file"),
    "weights": ("lpstream.liveportrait.weights_cli", "download or check LivePortrait weights"),
    "export-onnx": ("lpstream.liveportrait.onnx_export", "export LivePortrait networks to ONNX"),
}


def usage() -> str:
    lines = ["usage: python -m lpstream <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
