"""What a listener hears, on the host's clock: Chromium plays into a private PulseAudio null
sink and `parec` records its monitor, each 128-sample block stamped with the wall time (ms) it
left the sink. The lip-sync measurement takes the receiving page's sound from here, the way a
loudspeaker would play it; an AudioWorklet on the tile's track hears it later (measured here:
25–35 ms, growing to 90–130 ms on a loaded machine), through WebAudio's own buffering.

`AudioOutput.start()` returns None where PulseAudio is not installed
(`scripts/ensure_test_tools.sh` installs it); the measurement then falls back to the worklet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE = 48000
BLOCK = 128
READ_BYTES = 512
"""256 samples a read (5.3 ms): a block's stamp is at most that late."""


class AudioOutput:
    """A private PulseAudio server with one null sink, and a recorder of its monitor."""

    def __init__(self, runtime: Path, server: subprocess.Popen[bytes]) -> None:
        self.runtime = runtime
        self._server = server
        self.env = {**os.environ, "PULSE_SERVER": f"unix:{runtime}/native"}
        """The environment a browser needs to play into the sink."""
        self.samples: list[list[float]] = []
        """[wall ms at the block's end, RMS] of everything played since `record()`."""
        self._recorder: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> AudioOutput | None:
        if not (shutil.which("pulseaudio") and shutil.which("parec")):
            return None
        runtime = Path(tempfile.mkdtemp(prefix="lpstream-pulse-"))
        server = subprocess.Popen(
            [
                "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                "--use-pid-file=no", "--disable-shm",
                f"--load=module-native-protocol-unix auth-anonymous=1 socket={runtime}/native",
                f"--load=module-null-sink sink_name=listener rate={RATE}",
            ],
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        output = cls(runtime, server)
        for _ in range(50):
            if (runtime / "native").exists():
                return output
            time.sleep(0.1)
        output.close()
        return None

    def record(self) -> None:
        """Start (again) recording what the sink plays."""
        self.stop_recording()
        self.samples = []
        self._recorder = subprocess.Popen(
            ["parec", "-d", "listener.monitor", "--format=s16le", f"--rate={RATE}",
             "--channels=1", "--latency-msec=5"],
            env=self.env,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        threading.Thread(target=self._read, args=(self._recorder,), daemon=True).start()

    def _read(self, recorder: subprocess.Popen[bytes]) -> None:
        assert recorder.stdout is not None
        pending = np.zeros(0)
        while True:
            data = recorder.stdout.read(READ_BYTES)
            now_ms = time.time() * 1000
            if not data:
                return
            fresh = np.frombuffer(data[: len(data) // 2 * 2], "<i2") / 32768
            pending = np.concatenate([pending, fresh])
            blocks = len(pending) // BLOCK
            rms = np.sqrt(np.mean(pending[: blocks * BLOCK].reshape(blocks, BLOCK) ** 2, axis=1))
            # the newest sample was read now; each block ends that many samples earlier
            after_ms = (len(pending) - BLOCK * np.arange(1, blocks + 1)) * 1000 / RATE
            self.samples += [[now_ms - a, float(r)] for a, r in zip(after_ms, rms, strict=True)]
            pending = pending[blocks * BLOCK :]

    def stop_recording(self) -> None:
        if self._recorder is not None:
            self._recorder.kill()
            self._recorder.wait()
            self._recorder = None

    def close(self) -> None:
        self.stop_recording()
        self._server.kill()
        self._server.wait()
        shutil.rmtree(self.runtime, ignore_errors=True)


def browser_launch_options(output: AudioOutput | None) -> dict[str, Any]:
    """Playwright launch options that let the browser play into `output` (Playwright mutes
    headless browsers by default)."""
    if output is None:
        return {}
    return {"env": output.env, "ignore_default_args": ["--mute-audio"]}
