"""Text data-channel messages that are not UTF-8, dropped instead of fatal (aiortc patch).

aiortc decodes a WebRTC string message (PPID 51) and a channel-open label with
`bytes.decode("utf8")` deep in its receive path; a peer that sends invalid UTF-8 raises
`UnicodeDecodeError` there, which ends the DTLS transport, and with it every channel of the
peer connection, and logs a traceback. A browser never sends such bytes, a hostile peer can:
the message is dropped and counted, the connection lives on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from aiortc.rtcsctptransport import RTCSctpTransport

from lpstream.rate_limit import LogLimiter

log = logging.getLogger("lpstream.node")
quiet = LogLimiter(log)
"""Per-message complaints: one line per peer per interval."""

_installed = False
_lock = threading.Lock()
dropped = 0
"""Messages dropped in this process because their text was not UTF-8."""


def install() -> None:
    """Drop non-UTF-8 text messages of every aiortc association in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        receive = RTCSctpTransport._data_channel_receive

        async def tolerant_receive(self: Any, stream_id: int, pp_id: int, data: bytes) -> None:
            global dropped
            try:
                await receive(self, stream_id, pp_id, data)
            except UnicodeDecodeError:
                dropped += 1
                quiet.warning(id(self), "dropped a data-channel message whose text is not UTF-8")

        RTCSctpTransport._data_channel_receive = tolerant_receive  # type: ignore[method-assign]
        _installed = True
