"""Run a piece of the web client in Node.js: an ES module script reading JSON on stdin and
printing JSON, for tests that hold the page's code to the node's."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest


def run_module(runner: str, data: object) -> object:
    """`runner` (module source) fed `data` as JSON on stdin; its printed JSON. Skips the test
    when Node.js is absent."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js ≥ 20) is not installed")
    result = subprocess.run(
        [node, "--input-type=module", "-e", runner],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)
