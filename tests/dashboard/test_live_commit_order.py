"""The live log numbers messages in commit order (livelog.services.live_messages_append), so a reader
that took "everything after n" never misses a message committed later with a number below n.

Two writers on two connections, commit order forced: A numbers a message and keeps its transaction
open; B then tries to write. B must not get a number (let alone commit) before A ends. Meanwhile the
features kept per audience (dashboard.features) look at the log; after both commit, a second look must
hold both messages' features, applied from the log (not from a full build, which would hide a miss).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from dashboard import live
from dashboard.features import audience_features
from livelog.services import live_messages_append
from tenancy.selectors import ANONYMOUS
from tests.conftest import make_station

# Every wait here is bounded so a broken run fails instead of hanging; no assertion is about time.
BOUND_SECONDS = 30


def station_message(station, value: float) -> tuple[str, dict]:
    feature = live.live_feature(station, now=timezone.now(), show_sharing=False)
    feature["properties"]["value"] = value
    return live.PUBLIC_GROUP, {"type": "stations", "features": [feature]}


class Writer(threading.Thread):
    """Appends one message on its own database connection, in a transaction it ends when told to."""

    def __init__(self, message, *, hold_open: threading.Event | None = None, busy_timeout_ms: int | None = None):
        super().__init__(daemon=True)
        self.message, self.hold_open, self.busy_timeout_ms = message, hold_open, busy_timeout_ms
        self.numbered = threading.Event()
        self.done = threading.Event()
        self.backend_pid = None
        self.seq = None
        self.error: Exception | None = None

    def run(self):
        try:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.backend_pid = cursor.fetchone()[0]
            elif self.busy_timeout_ms is not None:
                connection.ensure_connection()
                with connection.cursor() as cursor:
                    cursor.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            with transaction.atomic():
                (numbered,) = live_messages_append([self.message])
                self.seq = numbered["seq"]
                self.numbered.set()
                if self.hold_open is not None:
                    assert self.hold_open.wait(BOUND_SECONDS)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.done.set()
            connections.close_all()


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def values_of(features) -> dict:
    return {feature["id"]: feature["properties"]["value"] for feature in map(lambda e: e.feature(), features.entries)}


def waiting_for_advisory_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = %s", [pid])
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_a_message_committed_after_a_higher_number_was_read_is_impossible(towns):
    early = make_station(towns[0], "ORDER-A", visibility="public")
    late = make_station(towns[0], "ORDER-B", visibility="public")
    store = live.live_store()
    keeper = audience_features(ANONYMOUS, show_sharing=False)
    keeper.current(seq=store.current_seq(), stream=store.stream_id())  # the first look: a full build

    release_a = threading.Event()
    writer_a = Writer(station_message(early, 1.11), hold_open=release_a)
    writer_a.start()
    assert writer_a.numbered.wait(BOUND_SECONDS), writer_a.error

    if connection.vendor == "postgresql":
        writer_b = Writer(station_message(late, 2.22))
        writer_b.start()
        # B either waits for A (the log's order holds) or gets through first (it does not).
        wait_until(
            lambda: writer_b.done.is_set() or (writer_b.backend_pid and waiting_for_advisory_lock(writer_b.backend_pid)),
            "B waiting for the log or B done",
        )
        assert not writer_b.numbered.is_set(), "B was numbered and committed while A, numbered first, was still open"
    else:
        # One writing transaction at a time: B cannot even begin while A is open (no busy wait here,
        # so it says so at once instead of queueing).
        refused = Writer(station_message(late, 2.22), busy_timeout_ms=0)
        refused.start()
        assert refused.done.wait(BOUND_SECONDS)
        assert isinstance(refused.error, OperationalError) and "locked" in str(refused.error), refused.error
        assert refused.seq is None
        writer_b = Writer(station_message(late, 2.22))

    # A reader looking now, between the two, sees neither (A is not committed, B has no number).
    middle = values_of(keeper.current(seq=store.current_seq(), stream=store.stream_id()))
    assert middle["ORDER-A"] != 1.11 and middle["ORDER-B"] != 2.22

    release_a.set()
    assert writer_a.done.wait(BOUND_SECONDS) and writer_a.error is None, writer_a.error
    if connection.vendor != "postgresql":
        writer_b.start()  # A has ended: now B may write
    assert writer_b.done.wait(BOUND_SECONDS) and writer_b.error is None, writer_b.error
    assert writer_a.seq < writer_b.seq

    values = values_of(keeper.current(seq=store.current_seq(), stream=store.stream_id()))
    assert keeper.last_update == "changes"
    assert values["ORDER-A"] == 1.11 and values["ORDER-B"] == 2.22
