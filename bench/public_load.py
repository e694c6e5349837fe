"""Load benchmark of the public page on a typhoon night (issue 17): N anonymous readers poll the
public snapshot through the proxy while a gateway posts readings, and a staff user loads the HQ board.

    make serve PROXY=1 PORT=8000 > var/serve.log 2>&1 &      # nginx on 8000, the application on 8001
    .venv/bin/python bench/public_load.py --url http://127.0.0.1:8000 --app-log var/serve.log \
        --readers 2000 --duration 60

The database (DATABASE_URL, the one `make serve` uses) gets, if missing, a town "bench-public" with
--stations public river gauges (each with a reading), a gateway token and a staff user. Then:

  1. idle: the HQ board (/hq/, logged in) timed --staff-samples times;
  2. load, for --duration seconds: --readers asyncio readers, each a keep-alive connection that GETs
     /api/v1/public/snapshot every publish tick (the document's live.interval) with If-None-Match, as
     static/mizumori/public.js does; a gateway posts one reading per second to station BPUB-FRESH
     (observed now); 1 reader in --probe-every decodes each new document and reads that station's
     observed_at: the data age it saw; the HQ board is timed again meanwhile.

Reported: reader latency p50/p95/p99, errors, data age p50/p95 (in ticks too), requests reaching the
application for the snapshot per second (counted in --app-log, the application's access log: uvicorn's
lines in `make serve`'s output), the HQ board's latency idle and under load, and the machine's load.
Nothing is asserted; figures go to stdout (and docs/performance.md by hand). Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.cookiejar
import json
import os
import random
import re
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = "/api/v1/public/snapshot"
FRESH_CODE = "BPUB-FRESH"
STAFF = ("bench-public-staff", "bench-Public-staff-7731")
OBSERVED = re.compile(rb'"code":"' + FRESH_CODE.encode() + rb'".*?"observed_at":"([^"]+)"')


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def seed(stations: int) -> str:
    """The bench town, its gauges, a token and a staff user (once); returns the gateway token."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from sensors.models import Station, Threshold
    from tenancy.models import Membership, Municipality
    from tenancy.services import ingest_token_create

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import RIVER_THRESHOLDS

    town, _ = Municipality.objects.get_or_create(
        slug="bench-public", defaults={"code": "999921", "name_ja": "負荷町", "name_en": "Load Town"}
    )
    existing = set(Station.objects.filter(municipality=town).values_list("code", flat=True))
    codes = [FRESH_CODE] + [f"BPUB-{i:04d}" for i in range(stations - 1)]
    created = Station.objects.bulk_create(
        Station(code=code, name_ja=f"{code} 観測所", name_en=f"{code} gauge", kind="river", municipality=town,
                lon=139.0 + (i % 50) * 0.02, lat=35.0 + (i // 50) * 0.02, unit="m", visibility="public")
        for i, code in enumerate(codes) if code not in existing
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in created for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    user = get_user_model().objects.filter(username=STAFF[0]).first()
    if user is None:
        user = get_user_model().objects.create_user(STAFF[0], password=STAFF[1])
        Membership.objects.create(user=user, municipality=town, role=Membership.Role.OPERATOR)
    token = ingest_token_create(municipality=town, label="bench public load")[1]
    return token


def post_readings(url: str, token: str, items: list[dict]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v1/observations", data=json.dumps({"observations": items}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(request, timeout=30).read()


def first_readings(url: str, token: str, stations: int) -> None:
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    codes = [FRESH_CODE] + [f"BPUB-{i:04d}" for i in range(stations - 1)]
    for start in range(0, len(codes), 1000):
        post_readings(url, token, [{"station": c, "observed_at": now.isoformat(), "value": 1.0 + (i % 300) / 100}
                                   for i, c in enumerate(codes[start:start + 1000])])


class Staff:
    """A logged-in HQ user (through the login form, with its CSRF token)."""

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(f"{url}/accounts/login/", timeout=30).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        form = urllib.parse.urlencode({"username": STAFF[0], "password": STAFF[1], "csrfmiddlewaretoken": token})
        request = urllib.request.Request(f"{url}/accounts/login/?next=/hq/", data=form.encode(),
                                         headers={"Referer": f"{url}/accounts/login/"})
        assert self.opener.open(request, timeout=30).geturl().endswith("/hq/"), "staff login failed"

    def board_ms(self) -> float:
        started = time.perf_counter()
        with self.opener.open(f"{self.url}/hq/", timeout=60) as response:
            response.read()
        return (time.perf_counter() - started) * 1000


def time_board(staff: Staff, samples: int, pause: float, out: list[float], stop: threading.Event | None = None):
    for _ in range(samples):
        if stop is not None and stop.is_set():
            return
        out.append(staff.board_ms())
        time.sleep(pause)


class Reader:
    def __init__(self, host: str, port: int, probe: bool):
        self.host, self.port, self.probe = host, port, probe
        self.etag: str | None = None
        self.reader = self.writer = None

    async def request(self) -> tuple[int, dict, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"GET {SNAPSHOT} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept-Encoding: gzip"]
        if self.etag:
            lines.append(f"If-None-Match: {self.etag}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        if headers.get("connection") == "close":
            self.writer.close()
            self.reader = self.writer = None
        return status, headers, body


async def run_reader(reader: Reader, interval: float, until: float, stats: dict) -> None:
    await asyncio.sleep(random.uniform(0, interval))
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            status, headers, body = await asyncio.wait_for(reader.request(), timeout=30)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            stats["errors"].append(type(error).__name__)
            reader.writer = reader.reader = None
            await asyncio.sleep(interval)
            continue
        stats["latency_ms"].append((time.perf_counter() - started) * 1000)
        if status == 200:
            reader.etag = headers.get("etag")
            if reader.probe:
                raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
                match = OBSERVED.search(raw)
                if match:
                    observed = datetime.fromisoformat(match[1].decode())
                    stats["age_s"].append((datetime.now(timezone.utc) - observed).total_seconds())
        elif status != 304:
            stats["errors"].append(f"HTTP {status}")
        await asyncio.sleep(interval)


async def run_readers(url: str, count: int, interval: float, duration: float, probe_every: int) -> dict:
    parts = urllib.parse.urlsplit(url)
    stats = {"latency_ms": [], "errors": [], "age_s": []}
    until = time.monotonic() + duration
    readers = [Reader(parts.hostname, parts.port or 80, probe=(i % probe_every == 0)) for i in range(count)]
    await asyncio.gather(*(run_reader(reader, interval, until, stats) for reader in readers))
    return stats


def gateway(url: str, token: str, stop: threading.Event, posted: list[float]) -> None:
    value = 1.0
    while not stop.is_set():
        value = 1.0 + (len(posted) % 100) / 1000
        started = time.perf_counter()
        post_readings(url, token, [{"station": FRESH_CODE, "observed_at": datetime.now(timezone.utc).isoformat(),
                                    "value": value}])
        posted.append(time.perf_counter() - started)
        stop.wait(1.0)


def app_snapshot_requests(log: Path, offset: int) -> int:
    with log.open("rb") as handle:
        handle.seek(offset)
        return sum(1 for line in handle if b'"GET /api/v1/public/snapshot' in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the proxy, e.g. http://127.0.0.1:8000")
    parser.add_argument("--app-log", type=Path, required=True, help="the application's access log (make serve's output)")
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--probe-every", type=int, default=100)
    parser.add_argument("--staff-samples", type=int, default=10)
    args = parser.parse_args()
    args.readers = max(1, min(args.readers, 20_000))
    args.duration = max(5.0, min(args.duration, 600.0))

    token = seed(args.stations)
    first_readings(args.url, token, args.stations)
    document = json.loads(urllib.request.urlopen(f"{args.url}{SNAPSHOT}", timeout=60).read())
    interval = float(document["live"]["interval"])
    # The proxy may hold the document of before the seeding for up to a tick (and stale copies longer).
    time.sleep(interval * 2)
    document = json.loads(urllib.request.urlopen(f"{args.url}{SNAPSHOT}", timeout=60).read())
    print(f"{len(document['features']):,} public stations in the document; tick {interval:g} s; "
          f"mode {document['mode']}, transport {document['live']['transport']}", flush=True)

    staff = Staff(args.url)
    idle: list[float] = []
    time_board(staff, args.staff_samples, 0.5, idle)

    stop = threading.Event()
    posted: list[float] = []
    under_load: list[float] = []
    threads = [
        threading.Thread(target=gateway, args=(args.url, token, stop, posted), daemon=True),
        threading.Thread(target=time_board, args=(staff, 10_000, 2.0, under_load, stop), daemon=True),
    ]
    offset = args.app_log.stat().st_size
    load_before = os.getloadavg()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    stats = asyncio.run(run_readers(args.url, args.readers, interval, args.duration, args.probe_every))
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    load_after = os.getloadavg()
    time.sleep(1)  # the last access-log lines
    app_requests = app_snapshot_requests(args.app_log, offset)

    latency, ages = stats["latency_ms"], stats["age_s"]
    total = len(latency) + len(stats["errors"])
    print(f"readers {args.readers:,} polling every {interval:g} s for {elapsed:.0f} s through {args.url}")
    print(f"  requests {total:,} ({total / elapsed:,.0f}/s), errors {len(stats['errors']):,}"
          f" ({100 * len(stats['errors']) / max(total, 1):.2f} %) {sorted(set(stats['errors']))[:5]}")
    print(f"  reader latency ms p50 {percentile(latency, 50):.1f}  p95 {percentile(latency, 95):.1f}"
          f"  p99 {percentile(latency, 99):.1f}")
    print(f"  data age s (n={len(ages)}) p50 {percentile(ages, 50):.1f}  p95 {percentile(ages, 95):.1f}"
          f"  = p95 {percentile(ages, 95) / interval:.1f} ticks")
    print(f"  snapshot requests reaching the application {app_requests} = {app_requests / elapsed:.2f}/s")
    print(f"  gateway POSTs {len(posted)}, p95 {percentile([p * 1000 for p in posted], 95):.0f} ms")
    ratio = statistics.median(under_load) / statistics.median(idle) if under_load and idle else float("nan")
    print(f"  HQ board ms: idle p50 {percentile(idle, 50):.0f} p95 {percentile(idle, 95):.0f};"
          f" under load p50 {percentile(under_load, 50):.0f} p95 {percentile(under_load, 95):.0f}"
          f" (n={len(under_load)}); median ratio {ratio:.2f}")
    print(f"  load average before {load_before[0]:.1f}, after {load_after[0]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
