"""Log set-up for `serve`: one line per event, as text or as JSON objects.

Events that concern a call carry `extra={"event": ..., "room": ..., "participant": ...}`; the
JSON formatter writes those fields as keys, so a log shipper can filter by room or
participant without parsing the message.
"""

from __future__ import annotations

import json
import logging
import time

EVENT_FIELDS = ("event", "room", "participant", "display_name", "node", "participants")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the event fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in EVENT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Replace the root handlers: stderr, one line per record (JSON lines never wrap)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per HTTP request
    logging.getLogger("aioice").setLevel(logging.WARNING)
