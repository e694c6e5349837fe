"""A storm replayed through the real ingestion path, one gateway batch per reading, with alert
evaluation subscribed: the exact audit trail it must leave behind."""

from datetime import timedelta

import threading

import pytest
from django.core.management import call_command
from django.db import connection

from alerts.models import Alert, AlertEvent, AlertRule
from sensors.models import Observation, Visibility
from tests.conftest import make_station

from .conftest import ingest, ingest_series, minute_now

# Thresholds (tests/conftest.py): 2.0 standby (no level), 3.0 → 2, 3.5 → 3, 4.0 → 4, 5.0 → 5.
# Default rules (alerts.rules): a level below 4 is raised by the second reading in a row that meets
# it, level 4 and up by the first; a level is left after 30 minutes below threshold − margin, the
# margin a quarter of the gap to the threshold below (3.0: 0.25, 3.5: 0.125, 4.0: 0.125, 5.0: 0.25).
# The plausible step (river defaults, sensors.plausibility) is 0.5 m + 3 m/h: 1 m per 10-minute reading. Rivers also have a rate-of-rise rule (0.5 m/h over 30 min).
STORM = [
    1.80, 1.85,
    4.60,  # a lone spike: jumps 2.75 m, raised unconfirmed for HQ at once, withdrawn by the next reading
    1.90, 2.20, 2.50,  # rising 1.8 m/h: the rate-of-rise alert (level 1) opens on 2.50
    2.80,
    2.96, 3.02,  # one reading at 3.0 is not yet level 2
    2.95, 3.01, 2.93, 3.04,  # hovers around 3.0: never two readings in a row above it
    3.20,  # the second in a row → level 2
    3.40, 3.55,
    3.70,  # the second in a row above 3.5 → 3
    3.85, 4.02,  # → 4 at once
    4.25, 4.50, 4.75, 5.02,  # → 5 at once
    5.20, 5.25, 4.95,  # 4.95 is inside the margin of 5.0: stays 5
    4.85, 4.60,  # below 4.75 from 4.60 on
    0.40,  # a spike down: comes back at once — no de-escalation, no resolution
    4.30, 4.05,  # half an hour below 4.75 → 4 (the rate-of-rise alert ended on 4.30)
    3.93,  # inside the margin of 4.0
    3.85, 3.55, 3.46, 3.52,  # half an hour below 3.875 → 3
    3.44, 3.50, 3.47, 3.41,  # hovers around 3.5 inside the margin
    3.30, 3.10, 2.95, 2.85,  # half an hour below 3.375 → 2
    2.60, 2.40, 2.20, 2.10,  # half an hour below 2.75 → resolved
]


def trail(station):
    return [
        (event.alert.rule.kind, event.kind, event.level)
        for event in AlertEvent.objects.filter(alert__station=station).select_related("alert__rule").order_by("pk")
    ]


@pytest.mark.django_db(transaction=True)
def test_storm_replay_leaves_the_exact_trail(towns):
    station = make_station(towns[0], "STORM-1", visibility=Visibility.PUBLIC)
    start = minute_now() - timedelta(hours=12)
    after_storm = ingest_series(station.code, start, STORM)

    threshold, stale, rise = AlertRule.Kind.THRESHOLD, AlertRule.Kind.STALE, AlertRule.Kind.RATE_OF_RISE
    storm_trail = [
        (threshold, "opened", 4),  # the spike, unconfirmed
        (threshold, "resolved", 4),  # withdrawn
        (rise, "opened", 1),
        (threshold, "opened", 2),
        (threshold, "escalated", 3),
        (threshold, "escalated", 4),
        (threshold, "escalated", 5),
        (rise, "resolved", 1),
        (threshold, "deescalated", 4),
        (threshold, "deescalated", 3),
        (threshold, "deescalated", 2),
        (threshold, "resolved", 2),
    ]
    assert trail(station) == storm_trail

    # The spike's alert stays marked: never confirmed, never public.
    spike = Alert.objects.get(station=station, rule__kind=threshold, unconfirmed_at__isnull=False)
    assert spike.events.order_by("pk").last().note.startswith("withdrawn")
    # One alert carried the whole storm, peaked at 5, and is over.
    alert = Alert.objects.get(station=station, rule__kind=threshold, unconfirmed_at__isnull=True)
    assert (alert.state, alert.level, alert.peak_level) == ("resolved", 2, 5)
    assert alert.level_scheme.version == "2021-05"
    # Each transition names the reading that caused it.
    observed = list(alert.events.order_by("pk").values_list("observed_at", "value"))
    assert [value for _, value in observed] == [3.20, 3.70, 4.02, 5.02, 4.05, 3.52, 2.85, 2.10]
    positions, position = [], 0
    for _, value in observed:
        position = STORM.index(value, position)
        positions.append(position)
    assert [at for at, _ in observed] == [start + timedelta(minutes=10 * i) for i in positions]

    # The steady rise into level 4 gave a rate of rise and a forecast for level 5; falling gives none.
    escalated_4 = alert.events.get(kind="escalated", level=4)
    assert escalated_4.metrics["rate_of_rise_per_hour"] > 0.5
    forecast = escalated_4.metrics["forecast"]
    assert forecast["level"] == 5 and 0 < forecast["uncertainty_seconds"] < forecast["eta_seconds"]
    assert alert.events.get(kind="deescalated", level=3).metrics["forecast"] is None

    # The gauge falls silent (last reading 3 hours before now): the periodic check notices, once.
    assert after_storm < minute_now() - timedelta(hours=2)
    call_command("check_stale_sensors")
    call_command("check_stale_sensors")
    assert trail(station) == storm_trail + [(stale, "opened", 1)]

    # It reports again: the stale alert resolves with that batch.
    ingest(station.code, [(minute_now() - timedelta(minutes=1), 1.5)])
    assert trail(station) == storm_trail + [(stale, "opened", 1), (stale, "resolved", 1)]
    assert not Alert.objects.filter(station=station).exclude(state="resolved").exists()


@pytest.mark.django_db(transaction=True)
def test_one_batch_with_many_readings_steps_through_every_level(towns):
    station = make_station(towns[0], "BATCH-1")
    start = minute_now() - timedelta(hours=3)
    ingest(station.code, [(start, 1.0)])
    ingest(
        station.code,
        [(start + timedelta(minutes=10 * i), value) for i, value in enumerate([1.0, 2.6, 3.1, 3.6, 4.1, 4.5], start=1)],
    )
    # 3.6 is the first reading above 3.5 and 4.1 raises level 4 at once: level 3 is never confirmed.
    assert [(kind, level) for rule, kind, level in trail(station) if rule == "threshold"] == [
        ("opened", 2), ("escalated", 4),
    ]
    # Replaying the same batch is all duplicates: nothing changes, nothing is recorded twice.
    report = ingest(station.code, [(start + timedelta(minutes=10 * i), 4.5) for i in range(1, 7)])
    assert report.duplicates == 6
    assert len(trail(station)) == 3  # and the rate-of-rise alert


@pytest.mark.django_db(transaction=True)
def test_a_flash_flood_jump_to_level_4_is_raised_at_once_unconfirmed_then_confirmed(towns, client):
    """QC flags, never silences: a jump of 3 m in 10 minutes is implausible, so it does not set the
    station's level yet — but it raises 警戒レベル4相当 for HQ at once, marked unconfirmed, hidden
    from the public; the next reading confirms it."""
    from alerts.services import CONFIRMED_NOTE, UNCONFIRMED_NOTE

    station = make_station(towns[0], "JUMP-1", visibility=Visibility.PUBLIC)
    start = minute_now() - timedelta(hours=3)
    at = ingest_series(station.code, start, [1.0, 1.1, 1.2, 4.2])
    alert = Alert.objects.get(station=station, rule__kind="threshold")
    assert (alert.level, alert.unconfirmed_at, alert.unconfirmed_from_level) == (4, at - timedelta(minutes=10), 0)
    opened = alert.events.get()
    assert (opened.kind, opened.value, opened.note, opened.metrics) == ("opened", 4.2, UNCONFIRMED_NOTE, {"unconfirmed": True})
    assert client.get(f"/api/v1/alerts/{alert.pk}").status_code == 404  # not to the public
    assert client.get("/api/v1/alerts").json()["count"] == 0

    ingest(station.code, [(at, 4.25)])
    alert.refresh_from_db()
    assert (alert.level, alert.state, alert.unconfirmed_at) == (4, "open", None)
    assert [(e.kind, e.level, e.note) for e in alert.events.order_by("pk")] == [
        ("opened", 4, UNCONFIRMED_NOTE), ("note", 4, CONFIRMED_NOTE),
    ]
    assert client.get(f"/api/v1/alerts/{alert.pk}").json()["unconfirmed"] is False  # now public


@pytest.mark.django_db(transaction=True)
def test_a_spike_is_raised_unconfirmed_and_withdrawn_by_the_next_reading(towns, client):
    from alerts.services import WITHDRAWN_NOTE

    station = make_station(towns[0], "SPIKE-1", visibility=Visibility.PUBLIC)
    start = minute_now() - timedelta(hours=3)
    ingest_series(station.code, start, [1.0, 1.05, 4.3, 1.08, 1.1])
    alert = Alert.objects.get(station=station, rule__kind="threshold")
    assert [(e.kind, e.level, e.note) for e in alert.events.order_by("pk")][1:] == [("resolved", 4, WITHDRAWN_NOTE)]
    assert alert.unconfirmed_at == start + timedelta(minutes=20)  # marked for good: never public
    assert client.get("/api/v1/alerts").json()["count"] == 0
    assert client.get(f"/api/v1/alerts/{alert.pk}").status_code == 404
    assert "SPIKE-1" not in client.get("/alerts/feed.atom").content.decode()
    # A jump to a level below 3 is not raised unconfirmed: it waits for the next reading as before.
    low = make_station(towns[0], "SPIKE-2")
    ingest_series(low.code, start, [1.0, 1.05, 3.2])
    assert not Alert.objects.filter(station=low, rule__kind="threshold").exists()


@pytest.mark.django_db(transaction=True)
def test_a_late_reading_does_not_rewrite_the_past(towns):
    station = make_station(towns[0], "LATE-1")
    start = minute_now() - timedelta(hours=3)
    ingest_series(station.code, start, [1.0, 1.02, 1.04, 1.06])  # slower than the rate-of-rise rule
    # A reading from before the last one arrives late: it is stored, but what was decided stays.
    ingest(station.code, [(start + timedelta(minutes=15), 3.2)])
    assert trail(station) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_for_one_station_leave_one_trail(towns):
    station = make_station(towns[0], "BUSY-1")
    start = minute_now() - timedelta(hours=3)
    ingest(station.code, [(start, 1.0)])
    batches = [
        [(start + timedelta(minutes=10 * i), value) for i, value in enumerate([2.6, 3.1, 3.6], start=1)],
        [(start + timedelta(minutes=10 * i), value) for i, value in enumerate([4.1, 4.3, 4.4], start=4)],
    ]
    barrier, errors = threading.Barrier(len(batches)), []

    def post(batch):
        try:
            barrier.wait()
            ingest(station.code, batch)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    events = [(kind, level) for rule, kind, level in trail(station) if rule == "threshold"]
    # Rising batch first: every level once. Later batch first: the earlier readings arrive late and
    # do not rewrite the past. Never anything twice.
    assert events in ([("opened", 2), ("escalated", 4)], [("opened", 4)])
    assert Alert.objects.get(station=station, rule__kind="threshold").level == 4


@pytest.mark.django_db(transaction=True)
def test_a_threshold_edit_mid_storm_leaves_older_readings_judged_by_the_old_value(towns, settings):
    """Evaluation lags behind ingestion (a batched worker): readings taken before the edit and judged
    after it are judged by the threshold that was in force when they were taken."""
    from sensors.models import Threshold
    from sensors.services import threshold_set

    station = make_station(towns[0], "EDIT-1", visibility=Visibility.PUBLIC)
    start = minute_now() - timedelta(hours=3)
    step = timedelta(minutes=10)
    ingest(station.code, [(start, 2.5)])  # the default rules start here
    settings.EVENTS_DRAIN = "workers"  # the change-log workers are behind: nothing is evaluated yet
    after = ingest_series(station.code, start + step, [3.1, 3.15, 3.1, 3.12], step)
    edited_at = after - timedelta(minutes=5)
    caution = Threshold.objects.get(station=station, name="flood_caution")
    threshold_set(threshold=caution, value=3.3, now=edited_at)  # 3.0 → 3.3 while the river is at 3.1
    settings.EVENTS_DRAIN = "eager"  # they catch up, with everything pending
    # 2.9 is below 3.3 − its margin (a quarter of the gap to 2.0) but inside the margin of the old 3.0.
    ingest_series(station.code, after, [2.9, 2.9, 2.9, 2.9, 2.9, 2.9], step)

    opened = AlertEvent.objects.get(alert__station=station, alert__rule__kind="threshold", kind="opened")
    assert opened.level == 2 and opened.observed_at < edited_at  # 3.1 ≥ 3.0, the value then
    resolved = AlertEvent.objects.get(alert__station=station, alert__rule__kind="threshold", kind="resolved")
    assert resolved.observed_at > edited_at  # 2.9 is below 3.3 − margin, the value now
    assert Alert.objects.filter(station=station, rule__kind="threshold").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_value_oscillating_around_a_threshold_for_two_hours_makes_one_alert(towns):
    station = make_station(towns[0], "OSC-1", visibility=Visibility.PUBLIC)
    # The default rules, untouched: alerts.rules.DEFAULT_LEVEL_SETTINGS.
    start = minute_now() - timedelta(hours=4)
    # 3.0 is 氾濫注意水位 (level 2), with a margin of 0.25 m.
    two_hours = [2.5, 3.1, 3.1] + [2.85, 3.1] * 5 + [3.05, 2.9, 3.1]
    ingest_series(station.code, start, two_hours + [2.6] * 6)

    events = AlertEvent.objects.filter(alert__station=station, alert__rule__kind="threshold").order_by("pk")
    assert [(e.kind, e.level) for e in events] == [("opened", 2), ("resolved", 2)]
    first_low = start + timedelta(minutes=10 * len(two_hours))
    resolved = events.last()
    assert resolved.observed_at >= first_low + timedelta(minutes=30)  # held below the margin half an hour


@pytest.mark.django_db(transaction=True)
def test_a_jump_to_level_4_is_raised_at_once_while_lower_levels_wait_for_a_second_reading(towns):
    station = make_station(towns[0], "FLASH-1", visibility=Visibility.PUBLIC)
    # The default rules, untouched: alerts.rules.DEFAULT_LEVEL_SETTINGS.
    start = minute_now() - timedelta(hours=1)
    ingest_series(station.code, start, [2.8, 3.3])
    # One reading above 氾濫注意水位 (3.0, level 2) is not yet a confirmed level 2.
    assert not AlertEvent.objects.filter(alert__station=station, alert__rule__kind="threshold").exists()
    ingest(station.code, [(start + timedelta(minutes=20), 4.1)])  # 氾濫危険水位 (4.0): level 4 equivalent

    events = AlertEvent.objects.filter(alert__station=station, alert__rule__kind="threshold")
    assert [(e.kind, e.level, e.observed_at) for e in events] == [("opened", 4, start + timedelta(minutes=20))]


@pytest.mark.django_db(transaction=True)
def test_station_limits_decide_jumps_for_alerts_too_and_a_range_flag_never_silences(towns):
    """One plausibility test (sensors.plausibility) for ingestion and alerts: a station whose limits
    allow a fast rise has its jump to level 4 raised as a plain alert; a reading outside a station's
    range is stored flagged "range" and still raises 警戒レベル4相当 unconfirmed for HQ."""
    from alerts.services import UNCONFIRMED_NOTE

    start = minute_now() - timedelta(hours=3)
    flashy = make_station(towns[0], "FLASHY-1", max_step=3.0)
    ingest_series(flashy.code, start, [1.0, 1.1, 4.2])
    alert = Alert.objects.get(station=flashy, rule__kind="threshold")
    assert (alert.level, alert.unconfirmed_at) == (4, None)
    assert alert.events.get().note != UNCONFIRMED_NOTE

    capped = make_station(towns[0], "CAPPED-1", max_step=3.0, plausible_max=4.1)  # the same rise, out of range
    ingest_series(capped.code, start, [1.0, 1.1, 4.2])
    assert Observation.objects.get(station=capped, value=4.2).quality == "range"
    alert = Alert.objects.get(station=capped, rule__kind="threshold", unconfirmed_at__isnull=False)
    assert (alert.level, alert.events.first().note) == (4, UNCONFIRMED_NOTE)
