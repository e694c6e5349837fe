"""The arithmetic bench/e2e.py reports with: percentiles, matching websocket receipts to POSTs, the
profile summary and the reading clock. No timing is asserted here (speed belongs in bench/)."""

import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def e2e():
    spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "bench" / "e2e.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_percentile_is_a_measured_value_nearest_rank(e2e):
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert e2e.pct(values, 50) == 0.3
    assert e2e.pct(values, 95) == 0.5
    assert e2e.pct(values, 0) == 0.1
    assert e2e.pct([], 95) != e2e.pct([], 95)  # NaN: no samples is not zero latency


def test_websocket_receipts_match_posts_whatever_offset_the_server_writes(e2e):
    sent = e2e.normalise_keys({"AWS01@2026-11-30T05:00:00.123456+00:00": 10.0})
    seen = e2e.normalise_keys({
        "AWS01@2026-11-30T14:00:00.123456+09:00": [10.1, 10.3],
        "AWS01@not a time": [99.0],
    })
    latencies, missing = e2e.fan_out_latencies(sent, seen, expected=3)
    assert latencies == pytest.approx([0.1, 0.3])
    assert missing == 1


def test_a_post_nobody_received_counts_every_client_missing(e2e):
    latencies, missing = e2e.fan_out_latencies({"k": 1.0}, {}, expected=1000)
    assert latencies == [] and missing == 1000


def test_reading_stamps_strictly_increase_even_within_one_clock_tick(e2e):
    clock = e2e.Clock()
    stamps = clock.stamps(3) + clock.stamps(3) + [clock.stamp()]
    times = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    assert all(t.tzinfo is not None and t.utcoffset() == timezone.utc.utcoffset(None) for t in times)


def test_wave_stays_plausible_and_every_fifth_station_crosses_flood_danger(e2e):
    from sensors.plausibility import KIND_DEFAULTS

    slack = KIND_DEFAULTS["river"].max_step
    for index in range(10):
        values = [e2e.wave_value(index, step) for step in range(240)]
        assert max(abs(b - a) for a, b in zip(values, values[1:])) < slack
        assert (max(values) > 4.0) == (index % 5 == 0)


def test_profile_summary_counts_project_frames_inclusively(e2e, tmp_path):
    root = str(e2e.ROOT)
    path = tmp_path / "profile.txt"
    path.write_text(
        f"run (uvicorn/main.py:1);ingest ({root}/sensors/services.py:10);emit (events/services.py:40) 3\n"
        f"run (/usr/lib/python3.11/site-packages/uvicorn/main.py:1);idle (/usr/lib/python3.11/selectors.py:5) 1\n"
        "garbage line without a count\n"
    )
    assert e2e.profile_summary(path) == "emit (events/services.py) 75%; ingest (sensors/services.py) 75%"
    assert e2e.profile_summary(tmp_path / "missing.txt") == "no profile written"


def test_only_accepts_known_phases(e2e):
    assert e2e.parse_args(["--quick", "--only", "a,c"]).phases == ["a", "c"]
    with pytest.raises(SystemExit):
        e2e.parse_args(["--only", "a,z"])
