"""A Redis outage is one WARNING line in the server's log, not a traceback every second (issue 10 item 4)."""

import logging

import redis.exceptions

from config.logfilters import OutageTracebackOnce


def record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException as exc:  # noqa: BLE001
        return logging.LogRecord("channels_redis.pubsub", logging.ERROR, __file__, 1,
                                 "Unexpected exception in receive task", (), (type(exc), exc, exc.__traceback__))


def test_an_outage_is_one_line_per_minute_and_a_bug_keeps_its_traceback():
    only = OutageTracebackOnce(seconds=60)
    refused = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    first = record(refused)
    assert only.filter(first)
    assert first.levelname == "WARNING" and first.exc_info is None
    assert "Redis unreachable (ConnectionError: Error 111" in first.getMessage()
    assert [only.filter(record(refused)) for _ in range(30)] == [False] * 30

    bug = record(KeyError("channel"))
    assert only.filter(bug) and bug.exc_info is not None and bug.levelname == "ERROR"

    only._last -= 61  # a minute later, the outage is mentioned again, with the count of repeats
    again = record(refused)
    assert only.filter(again) and "(30 repeat(s) not logged)" in again.getMessage()
