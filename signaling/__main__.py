"""`python -m signaling`: run the signaling server alone, or print a room token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from signaling.limits import Limits
from signaling.origins import OriginPolicy
from signaling.server import SignalingServer
from signaling.tokens import make_token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m signaling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token-secret", default=None, help="require HMAC room tokens")
    parser.add_argument(
        "--allow-origin", action="append", default=[], help="extra allowed browser origin"
    )
    parser.add_argument("--max-participants", type=int, default=Limits.max_participants)
    parser.add_argument("--max-rooms", type=int, default=Limits.max_rooms)
    parser.add_argument(
        "--make-token", metavar="ROOM", help="print a token for ROOM (needs --token-secret)"
    )
    parser.add_argument("--token-ttl", type=int, default=24 * 3600, help="token lifetime, s")
    return parser


async def run(args: argparse.Namespace) -> None:
    server = SignalingServer(
        Limits(max_participants=args.max_participants, max_rooms=args.max_rooms),
        token_secret=args.token_secret,
        origins=OriginPolicy(args.allow_origin),
    )
    ws_server = await server.serve(args.host, args.port)
    print(f"signaling on ws://{args.host}:{args.port}/ws", flush=True)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    await stop
    ws_server.close()
    await ws_server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.make_token:
        if not args.token_secret:
            print("--make-token needs --token-secret", file=sys.stderr)
            return 2
        print(make_token(args.token_secret, args.make_token, args.token_ttl))
        return 0
    if not 2 <= args.max_participants <= 16:
        print("--max-participants must be between 2 and 16", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
