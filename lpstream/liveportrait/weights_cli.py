"""`python -m lpstream weights download|check`: fetch or validate the official weights."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lpstream.liveportrait.weights import (
    HUB_REPO_ID,
    REQUIRED_FILES,
    WEIGHTS_ENV,
    check_weights,
    resolve_weights_dir,
    short_reason,
)

HUB_URL = f"https://huggingface.co/{HUB_REPO_ID}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lpstream weights",
        description="Download or check the official LivePortrait weights.",
        epilog=f"The weights folder defaults to ${WEIGHTS_ENV}, else models/ in the checkout.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser(
        "download", help=f"download the required files from {HUB_URL} (resumable)"
    )
    download.add_argument("--dir", "--weights", dest="weights", type=Path, default=None)
    check = commands.add_parser("check", help="validate every required file and tensor")
    check.add_argument("directory", nargs="?", type=Path, default=None)
    check.add_argument("--weights", dest="weights_option", type=Path, default=None)
    return parser


def manual_download_help(root: Path) -> str:
    paths = "\n".join(f"    {relative}" for relative in REQUIRED_FILES)
    return (
        f"Manual alternative: on a machine with internet access, download these files from "
        f"{HUB_URL}/tree/main (or `huggingface-cli download {HUB_REPO_ID} <path> "
        f"--local-dir <folder>`), copy them into {root} keeping their paths:\n{paths}\n"
        f"then run `python -m lpstream weights check {root}`."
    )


def download_failure_reason(error: BaseException) -> str:
    """Why a hub download failed, in one short line.

    huggingface_hub wraps the real cause (DNS failure, refused connection, offline mode) in a
    generic "cannot find the requested files in the local cache" error; the innermost
    exception of the chain is the one that tells the user what to fix.
    """
    cause = error
    while (inner := cause.__cause__ or cause.__context__) is not None and inner is not cause:
        cause = inner
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set, so the hub is not contacted; unset it to download"
    return short_reason(cause, limit=200)


def download(root: Path) -> int:
    # Imported here: huggingface_hub reads HF_HUB_OFFLINE etc. at import time, and `check`
    # does not need it at all.
    from huggingface_hub import hf_hub_download

    root.mkdir(parents=True, exist_ok=True)
    # Files already present and valid (e.g. copied in by hand) are not fetched again.
    broken = {problem.file for problem in check_weights(root)}
    needed = [relative for relative in REQUIRED_FILES if relative in broken]
    for number, relative in enumerate(needed, start=1):
        print(f"[{number}/{len(needed)}] {relative}", flush=True)
        try:
            # Downloads into root/relative; an interrupted download resumes from its
            # `.incomplete` file, and a complete file is not fetched again.
            hf_hub_download(repo_id=HUB_REPO_ID, filename=relative, local_dir=root)
        except Exception as error:  # network, offline mode, HTTP and disk errors alike
            reason = download_failure_reason(error)
            print(
                f"error: cannot download {relative} from {HUB_URL} ({reason}).\n"
                + manual_download_help(root),
                file=sys.stderr,
            )
            return 1
    return check(root)


def check(root: Path) -> int:
    problems = check_weights(root)
    if problems:
        for problem in problems:
            print(problem)
        if root.exists() and not root.is_dir():
            return 1  # nothing to download into; the one problem line says it all
        print(
            f"{len(problems)} problem(s) in {root}. Fix with `python -m lpstream weights "
            f"download --dir {root}` (re-downloads what is missing) or see models/README.md.",
            file=sys.stderr,
        )
        return 1
    print(f"OK: all {len(REQUIRED_FILES)} LivePortrait weight files in {root} match the layout.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "download":
        return download(resolve_weights_dir(args.weights))
    return check(resolve_weights_dir(args.directory or args.weights_option))


if __name__ == "__main__":
    sys.exit(main())
