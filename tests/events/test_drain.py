"""The change log: emit inside the writer's transaction, drain in batches, retry, exactly-once effect."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import transaction
from django.utils import timezone

from events import registry
from events.models import OutboxEvent
from events.selectors import event_lag
from events.services import drain_once, drain_pending, emit, failed_events_retry
from tests.events.workers import drain_in_threads
from tenancy.models import AuditEvent


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


@pytest.fixture
def handled():
    """Registers test handlers for kind "test.thing"; yields the list of batches they received."""
    batches: list[list[tuple[str, dict]]] = []
    lock = threading.Lock()

    def record(events):
        with lock:
            batches.append(events)

    registry.register("test.record", kinds=["test.thing"], func=record)
    yield batches
    registry.unregister("test.record")
    registry.unregister("test.broken")


def test_emit_writes_one_row_per_registered_handler_and_none_for_unknown_kinds(db, workers, handled):
    assert emit("test.nobody-listens", {"x": 1}) == 0
    assert emit("test.thing", {"x": 1}) == 1
    row = OutboxEvent.objects.get()
    assert (row.kind, row.handler, row.payload, row.attempts, row.failed_at) == ("test.thing", "test.record", {"x": 1}, 0, None)


def test_a_routed_handler_gets_its_part_of_each_event_and_no_row_when_it_has_none(db, workers, handled):
    def evens(kind, payload):
        mine = [n for n in payload["ns"] if n % 2 == 0]
        return {**payload, "ns": mine} if mine else None

    registry.register("test.evens", kinds=["test.thing"], func=lambda events: None, route=evens)
    try:
        assert emit("test.thing", {"ns": [1, 2, 3, 4], "x": 1}) == 2
        assert emit("test.thing", {"ns": [5], "x": 2}) == 1
        rows = list(OutboxEvent.objects.order_by("id").values_list("handler", "payload"))
    finally:
        registry.unregister("test.evens")
    assert rows == [
        ("test.evens", {"ns": [2, 4], "x": 1}),
        ("test.record", {"ns": [1, 2, 3, 4], "x": 1}),
        ("test.record", {"ns": [5], "x": 2}),
    ]


def test_handlers_sharing_a_payload_each_get_all_of_it_and_a_routed_one_its_own_part(db, workers, handled):
    """On PostgreSQL the rows go in as one statement with each distinct payload sent once."""
    hostile = {"ns": [1, 2, 3], "text": 'quote " back \\ slash \'; -- 水位 \u2028', "nested": {"a": [None, True, 1.5]}}

    def odds(kind, payload):
        return {**payload, "ns": [n for n in payload["ns"] if n % 2]}

    registry.register("test.copy", kinds=["test.thing"], func=lambda events: None)
    registry.register("test.odds", kinds=["test.thing"], func=lambda events: None, route=odds)
    try:
        assert emit("test.thing", hostile) == 3
        rows = list(OutboxEvent.objects.order_by("handler").values_list(
            "kind", "handler", "payload", "attempts", "last_error", "failed_at", "created_at", "available_at"))
    finally:
        registry.unregister("test.copy")
        registry.unregister("test.odds")
    assert [row[1:3] for row in rows] == [
        ("test.copy", hostile), ("test.odds", {**hostile, "ns": [1, 3]}), ("test.record", hostile),
    ]
    assert {row[0] for row in rows} == {"test.thing"}
    assert {row[3:6] for row in rows} == {(0, "", None)}
    assert len({row[6] for row in rows} | {row[7] for row in rows}) == 1


def test_a_drain_hands_a_handler_its_whole_batch_in_order_and_removes_it(db, workers, handled):
    for n in range(5):
        emit("test.thing", {"n": n})
    report = drain_once(handler_names=["test.record"])
    assert (report.claimed, report.handled, report.failed) == (5, 5, 0)
    assert handled == [[("test.thing", {"n": n}) for n in range(5)]]
    assert not OutboxEvent.objects.exists()


def test_a_pass_opens_no_transaction_for_handlers_with_nothing_claimable(db, workers, handled):
    """One query finds the handlers with work; the others (most of the nine, most of the time) cost
    no lock, claim or commit. A handler whose only events wait for their retry counts as idle."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as idle:
        report = drain_once()
    assert (report.claimed, len(idle)) == (0, 1)

    emit("test.thing", {"n": 1})
    OutboxEvent.objects.update(available_at=timezone.now() + timedelta(minutes=5))
    with CaptureQueriesContext(connection) as waiting:
        assert drain_once().claimed == 0
    assert len(waiting) == 1

    OutboxEvent.objects.update(available_at=timezone.now())
    with CaptureQueriesContext(connection) as busy:
        report = drain_once()
    assert (report.claimed, report.handled) == (1, 1)
    assert len(registry.handlers()) > 2 and len(busy) < 2 + 8  # the probe, then one handler's transaction


def test_a_failing_handler_is_retried_alone_with_backoff_and_its_writes_roll_back(db, workers, handled, caplog):
    calls = []

    def broken(events):
        calls.append(events)
        AuditEvent.objects.create(action="visibility_changed", target="written by a failing handler")
        raise RuntimeError("receiver down")

    registry.register("test.broken", kinds=["test.thing"], func=broken, max_attempts=3)
    emit("test.thing", {"n": 1})
    report = drain_pending()
    assert report.failed == 1 and len(handled) == 1 and len(calls) == 1
    # What the failing handler wrote went with it; the working handler's event is gone, its own stays.
    assert not AuditEvent.objects.filter(target="written by a failing handler").exists()
    row = OutboxEvent.objects.get()
    assert (row.handler, row.attempts, row.failed_at) == ("test.broken", 1, None)
    assert "RuntimeError: receiver down" in row.last_error and row.available_at > timezone.now()
    assert "retrying in 1 s" in caplog.text

    drain_pending()
    assert len(calls) == 1  # not before its time
    for attempt in (2, 3):
        OutboxEvent.objects.update(available_at=timezone.now())
        drain_pending()
        assert len(calls) == attempt
    row.refresh_from_db()
    assert row.failed_at is not None and row.attempts == 3  # gave up, kept for the operator
    lag = event_lag()
    assert (lag.pending, lag.failed, lag.lag_seconds) == (0, 1, 0.0)
    assert failed_events_retry(handler_name="test.broken") == 1
    assert event_lag().pending == 1


def test_lag_is_the_age_of_the_oldest_pending_event(db, workers, handled):
    emit("test.thing", {})
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(seconds=42))
    lag = event_lag()
    assert 41 <= lag.lag_seconds < 60 and lag.pending == 1
    assert lag.as_dict()["handlers"]["test.record"]["pending"] == 1


@pytest.mark.django_db(transaction=True)
def test_nothing_is_emitted_when_the_writer_rolls_back(workers, handled):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            emit("test.thing", {})
            raise RuntimeError("writer failed")
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_eager_drain_runs_after_commit_only(settings, handled):
    settings.EVENTS_DRAIN = "eager"
    with transaction.atomic():
        emit("test.thing", {"n": 1})
        assert handled == []
    assert handled == [[("test.thing", {"n": 1})]]


@pytest.mark.django_db(transaction=True)
def test_two_workers_handle_every_event_exactly_once(workers, handled):
    for n in range(200):
        emit("test.thing", {"n": n})
    registry.register("test.record", kinds=["test.thing"], func=registry.get("test.record").func, batch_size=7)
    errors = drain_in_threads(handler_names=["test.record"])
    assert not errors
    seen = [payload["n"] for batch in handled for _, payload in batch]
    assert sorted(seen) == list(range(200))  # each once, none lost
    assert all(len(batch) <= 7 for batch in handled)


def test_the_system_check_fails_when_alert_evaluation_is_not_wired(db):
    assert not [error for error in run_checks() if error.id == "events.E001"]
    saved = registry.get("alerts.evaluate")
    registry.unregister("alerts.evaluate")
    try:
        assert [error.id for error in run_checks() if error.id == "events.E001"] == ["events.E001"]
    finally:
        registry.register(saved.name, kinds=saved.kinds, func=saved.func, batch_size=saved.batch_size,
                          max_attempts=saved.max_attempts)


def test_apps_register_their_handlers():
    names = {handler.name for handler in registry.handlers_for("station.changed")}
    assert {"alerts.evaluate", "dashboard.live", "ngsi.notify"} <= names
    assert [h.name for h in registry.handlers_for("alert.changed")] == ["dashboard.live"]
    assert [h.name for h in registry.handlers_for("shelter.changed")] == ["dashboard.live"]
    assert [h.name for h in registry.handlers_for("visibility.changed")] == ["dashboard.live"]


def test_an_in_order_handler_holds_newer_events_while_an_older_batch_waits_for_its_retry(db, workers, handled, caplog):
    """The live publisher's guarantee: what could not go out during an outage goes out first, then
    what came after, so sequence numbers follow the changes (issue 10 item 5)."""
    seen: list[int] = []
    down = {"yes": True}

    def publish(events):
        if down["yes"]:
            raise ConnectionError("Redis is restarting")
        seen.extend(payload["n"] for _, payload in events)

    registry.register("test.broken", kinds=["test.thing"], func=publish, retry_max_seconds=5, in_order=True)
    emit("test.thing", {"n": 1})
    drain_once(handler_names=["test.broken"])
    # An outage is one line, not a traceback.
    assert "could not run on 1 event(s): ConnectionError: Redis is restarting; retrying in 1 s" in caplog.text
    assert "Traceback" not in caplog.text
    emit("test.thing", {"n": 2})
    down["yes"] = False

    assert drain_once(handler_names=["test.broken"]).claimed == 0  # n=2 waits behind n=1's retry
    assert seen == []
    mine = OutboxEvent.objects.filter(handler="test.broken")
    for attempt in range(2, 8):
        assert all(row.available_at - timezone.now() <= timedelta(seconds=5) for row in mine)  # capped back-off
        mine.update(available_at=timezone.now())
        down["yes"] = attempt < 7
        drain_once(handler_names=["test.broken"])
        assert seen == ([] if down["yes"] else [1, 2])
    assert not mine.exists()
