"""Log output for the daemon and the CLI (SPEC §4.1: structured logs on stderr).

Only ``cli.py`` calls :func:`configure`; every module logs through
``logging.getLogger(__name__)`` with lazy ``%s`` arguments and never passes a secret, an
amount or a payload (STYLE: logging). The JSON format writes one object per line with the
standard fields plus whatever the caller passed in ``extra``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

_STANDARD_ATTRS: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                document[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        # Timestamps in UTC, as the trailing "Z" says: several nodes' logs then sort together.
        self.converter = time.gmtime


def configure(level: str = "info", fmt: str = "text", *, node: str | None = None) -> None:
    """Send every petranode log record to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if node is not None:
        handler.addFilter(_NodeNameFilter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The kademlia package logs every datagram at INFO; its warnings are what an operator needs.
    logging.getLogger("kademlia").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("rpcudp").setLevel(max(logging.WARNING, root.level))


class _NodeNameFilter(logging.Filter):
    """Tags every record with the node's name: several nodes' logs can then be merged."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


#: STYLE: peer-caused errors are logged at a bounded rate. Five lines per kind per minute tells an
#: operator what is happening without letting one noisy peer fill the disk.
LOG_BURST: Final = 5
LOG_WINDOW_S: Final = 60.0


class RateLimitedLog:
    """At most ``burst`` lines per event kind per ``window_s``; the next line after a quiet
    spell says how many were suppressed."""

    def __init__(self, logger: logging.Logger, *, burst: int = LOG_BURST,
                 window_s: float = LOG_WINDOW_S) -> None:
        self._logger = logger
        self._burst = burst
        self._window_s = window_s
        self._windows: dict[str, tuple[float, int, int]] = {}

    def log(self, level: int, kind: str, msg: str, *args: object,
            exc_info: BaseException | None = None) -> None:
        now = time.monotonic()
        start, emitted, suppressed = self._windows.get(kind, (now, 0, 0))
        if now - start >= self._window_s:
            start, emitted = now, 0
        if emitted >= self._burst:
            self._windows[kind] = (start, emitted, suppressed + 1)
            return
        self._windows[kind] = (start, emitted + 1, 0)
        if suppressed:
            msg += " (%d similar suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args, exc_info=exc_info)
