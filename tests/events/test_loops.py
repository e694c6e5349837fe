"""events.loops.run_periodically: long-running loops survive database and Redis outages."""

import logging
import os
import signal
import threading

import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError

from events.loops import backoff_delay, run_periodically


class FakeTime:
    """A clock that moves only when the loop sleeps, and a sleep that records instead of waiting."""

    def __init__(self, stop: threading.Event, *, stop_after_sleeps: int):
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.stop = stop
        self.stop_after_sleeps = stop_after_sleeps

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) >= self.stop_after_sleeps:
            self.stop.set()
        return self.stop.is_set()


def flaky_job(errors: list[BaseException | None]):
    """A job that raises the given errors one per call (None: that call succeeds), then succeeds;
    it counts its calls."""
    calls = []

    def job():
        calls.append(len(calls))
        if len(calls) <= len(errors) and errors[len(calls) - 1] is not None:
            raise errors[len(calls) - 1]

    return job, calls


def records(caplog, level):
    return [r for r in caplog.records if r.name == "events.loops" and r.levelno == level]


def test_database_outage_is_one_warning_and_one_recovery_line(caplog):
    caplog.set_level(logging.DEBUG, logger="events.loops")
    shutting_down = OperationalError("the database system is shutting down\nDETAIL: more text")
    job, calls = flaky_job([shutting_down] * 4)
    stop = threading.Event()
    fake = FakeTime(stop, stop_after_sleeps=6)
    run_periodically(job, interval=5, loop=True, name="dispatch_alerts", stop=stop, sleep=fake.sleep,
                     clock=fake.clock, backoff_initial=1, backoff_max=4, jitter=lambda: 1.0)
    # Four failures backed off 1, 2, 4, 4 (capped); then two normal ticks at the interval.
    assert fake.sleeps == [1, 2, 4, 4, 5, 5]
    assert len(calls) == 6
    [warning] = records(caplog, logging.WARNING)
    assert warning.getMessage() == (
        "dispatch_alerts: database or Redis unavailable (OperationalError: the database system is shutting "
        "down); retrying with back-off up to 4 s"
    )
    assert warning.exc_info is None
    [recovered] = records(caplog, logging.INFO)
    assert recovered.getMessage() == "dispatch_alerts: database and Redis reachable again after 11.0 s (4 failed attempts)"
    assert records(caplog, logging.ERROR) == []


@pytest.mark.parametrize(
    "error",
    [
        InterfaceError("connection already closed"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_redis_and_connection_errors_are_outages_too(caplog, error):
    caplog.set_level(logging.INFO, logger="events.loops")
    job, calls = flaky_job([error, error])
    stop = threading.Event()
    fake = FakeTime(stop, stop_after_sleeps=3)
    run_periodically(job, interval=1, loop=True, name="drain", stop=stop, sleep=fake.sleep, clock=fake.clock)
    assert len(calls) == 3
    assert len(records(caplog, logging.WARNING)) == 1
    assert len(records(caplog, logging.INFO)) == 1
    assert records(caplog, logging.ERROR) == []


def test_a_second_outage_is_reported_again(caplog):
    caplog.set_level(logging.INFO, logger="events.loops")
    down = OperationalError("server closed the connection unexpectedly")
    job, _ = flaky_job([down, None, down])
    stop = threading.Event()
    fake = FakeTime(stop, stop_after_sleeps=5)
    run_periodically(job, interval=1, loop=True, stop=stop, sleep=fake.sleep, clock=fake.clock)
    assert len(records(caplog, logging.WARNING)) == 2
    assert len(records(caplog, logging.INFO)) == 2


def test_unexpected_errors_log_one_traceback_per_distinct_error_and_the_loop_goes_on(caplog):
    caplog.set_level(logging.INFO, logger="events.loops")
    job, calls = flaky_job([KeyError("a"), KeyError("a"), KeyError("a"), ValueError("bad row 7")])
    stop = threading.Event()
    fake = FakeTime(stop, stop_after_sleeps=5)
    run_periodically(job, interval=2, loop=True, name="check", stop=stop, sleep=fake.sleep, clock=fake.clock)
    assert len(calls) == 5
    # An unexpected error is not an outage: no back-off, the loop keeps its pace.
    assert fake.sleeps == [2, 2, 2, 2, 2]
    errors = records(caplog, logging.ERROR)
    with_traceback = [r for r in errors if r.exc_info]
    assert [r.exc_info[0] for r in with_traceback] == [KeyError, ValueError]
    assert [r.getMessage() for r in errors if not r.exc_info] == [
        "check: failed again (2 times so far): KeyError: 'a'",
        "check: failed again (3 times so far): KeyError: 'a'",
    ]
    assert records(caplog, logging.WARNING) == []


@pytest.mark.parametrize("error", [OperationalError("could not connect"), KeyError("x")])
def test_run_once_lets_every_error_propagate(error):
    job, calls = flaky_job([error])
    with pytest.raises(type(error)):
        run_periodically(job, interval=1, loop=False)
    assert len(calls) == 1


def test_run_once_runs_the_job_once_without_sleeping():
    job, calls = flaky_job([])
    slept = []
    run_periodically(job, interval=1, loop=False, sleep=slept.append)
    assert (len(calls), slept) == (1, [])


def test_backoff_is_exponential_capped_and_jittered():
    assert [backoff_delay(n, initial=1, cap=60, jitter=lambda: 1.0) for n in (1, 2, 3, 6, 7, 20)] == [
        1, 2, 4, 32, 60, 60,
    ]
    assert backoff_delay(3, initial=1, cap=60, jitter=lambda: 0.0) == 2
    assert 30 <= backoff_delay(30, initial=1, cap=60) <= 60


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_loop_after_the_running_tick(signum):
    ticks = []

    def job():
        ticks.append("started")
        os.kill(os.getpid(), signum)  # arrives while the job runs: the tick still finishes
        ticks.append("finished")

    previous = signal.getsignal(signum)
    run_periodically(job, interval=3600, loop=True)
    assert ticks == ["started", "finished"]
    assert signal.getsignal(signum) is previous


def test_an_error_raised_while_handling_an_outage_is_an_outage():
    from django.contrib.sessions.exceptions import SessionInterrupted

    from events.loops import is_service_outage

    try:
        try:
            raise OperationalError("the database system is shutting down")
        except OperationalError:
            raise SessionInterrupted("The request's session was deleted before the request completed.")
    except SessionInterrupted as error:
        assert is_service_outage(error)
    assert not is_service_outage(SessionInterrupted("really deleted"))
    assert not is_service_outage(None)
