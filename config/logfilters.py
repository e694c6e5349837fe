"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging
import time

OUTAGE_REPEAT_SECONDS = 60.0


class OutageTracebackOnce(logging.Filter):
    """channels_redis's pub/sub receiver logs a whole traceback every second while Redis is down
    (it retries by itself and resubscribes when Redis is back). Say it in one WARNING line, then
    stay quiet about the same outage for a minute; other records pass untouched."""

    def __init__(self, seconds: float = OUTAGE_REPEAT_SECONDS):
        super().__init__()
        self.seconds = seconds
        self._last: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        from events.loops import first_line, is_service_outage

        error = record.exc_info[1] if record.exc_info else None
        if not is_service_outage(error):
            return True
        now = time.monotonic()
        if self._last is not None and now - self._last < self.seconds:
            self._suppressed += 1
            return False
        self._last = now
        record.msg = "Redis unreachable (%s); the channel layer retries every second (%d repeat(s) not logged)"
        record.args = (first_line(error), self._suppressed)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._suppressed = 0
        return True
