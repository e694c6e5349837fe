"""End-to-end benchmark: the production process set on PostgreSQL + Redis, measured from outside.

    make bench                                  # everything, one table (var/bench/latest.md)
    .venv/bin/python bench/e2e.py --quick       # short durations, fewer clients: for development
    .venv/bin/python bench/e2e.py --only a,c --duration 30 --clients 3

One run drops and re-creates the PostgreSQL database BENCH_DATABASE_URL names (default
postgres://postgres@127.0.0.1:5432/mizumori_bench), migrates it, clears its keys in Redis
(BENCH_REDIS_URL, default db 9, prefix BENCH_PREFIX), seeds towns, stations, thresholds, default
alert rules, gateway tokens and a day of history through the service layer, then starts `bin/serve`
(uvicorn, change-log drain workers, Celery worker and beat) on a free loopback port and measures it
over HTTP and websockets:

    a  sustained ingest (newest readings, thresholds crossed) with the change-log lag from /health/,
       beside raw COPY into a copy of the observations table; CPU time per reading per process kind
    b  300-station gateway tick
    c  POST -> `stations` message at 1,000 anonymous websocket clients, beside raw Redis PUBLISH
       fan-out to 1,000 subscriber connections; RSS of the ASGI processes with the clients connected
    d  POST crossing a threshold, then the confirming reading -> public `alert` message on a websocket,
       and -> level-3 webhook received (timed from the confirming POST)
    e  7 days (10,080 rows) of one station's history over HTTP
    f  `/` with 2,000 public stations (shell, base map and snapshot document): bytes (gzip and not),
       server time, Chromium time to last marker
    m  bench/run.py, the in-process micro-benchmark (same PostgreSQL, its own test database)

It prints figures and asserts nothing; every figure carries the 1-minute load average at the moment
it was measured, because the machine is shared. Every wait is bounded and only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import math
import multiprocessing
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mizumori_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PREFIX = os.environ.get("BENCH_PREFIX", "mz-bench-e2e")
# Station markers on `/`: the class map.js gives a station's Leaflet divIcon. Override with
# --marker-selector when the page draws stations differently.
# Every station marker carries it, full (SVG badge inside) or light (one element: static/mizumori/stations.js).
MARKER_SELECTOR = ".mz-station-icon"
CHROMIUM = "/usr/bin/chromium"

TOWNS = [  # slug, five digits of the local government code (the check digit is computed)
    ("bench-a", "99101"),
    ("bench-b", "99102"),
    ("bench-c", "99103"),
]
MAP_TOWN = ("bench-map", "99104")
RIVER_STATIONS = 1000
VISIBILITY_CYCLE = ["public", "public", "region", "shared", "private"]
HISTORY_STEP = timedelta(minutes=10)
HISTORY_DAYS = 1
ALERT_BASE = 2.95  # the alert-phase stations sit here (below 氾濫注意水位 3.0) until crossed
# Phase d rises in steps the plausibility check believes (a river's default max_step is 0.5 m, and a
# larger jump takes the unconfirmed-raise path instead): 3.3 (氾濫注意水位), then the crossing 3.6
# (above 避難判断水位 3.5: 警戒レベル3相当, which the public alert layer shows). Below level 4 the default
# rules raise only when a second reading confirms the first (alerts.rules DEFAULT_LEVEL_SETTINGS), so
# the confirming reading follows, and its POST is what is timed.
ALERT_LEAD_IN = (3.3, 3.6)
ALERT_CONFIRMING = 3.62
GOALS = {
    "ingest": "≥ 20,000/s, lag ≤ 5 s",
    "ratio": "≥ 25 %",
    "tick": "p95 ≤ 50 ms",
    "ws": "p95 ≤ 250 ms",
    "ws_ratio": "≤ 3×",
    "rss": "≤ 300 MB per process",
    "alert_ws": "p95 ≤ 1 s",
    "webhook": "p95 ≤ 3 s",
    "history": "p95 ≤ 50 ms",
    "page_bytes": "≤ 500 KB",
    "marker": "≤ 1.5 s",
}


# --- small helpers -------------------------------------------------------------------------------


def load1() -> float:
    return os.getloadavg()[0]


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


class Clock:
    """Reading times from the wall clock, as a gateway stamps them, strictly increasing in this process
    (several readings of one station in one POST are a millisecond apart)."""

    def __init__(self):
        self.last = 0.0

    def stamps(self, count: int) -> list[str]:
        first = max(time.time(), self.last + 0.001)
        self.last = first + 0.001 * (count - 1)
        return [datetime.fromtimestamp(first + 0.001 * k, timezone.utc).isoformat() for k in range(count)]

    def stamp(self) -> str:
        return self.stamps(1)[0]


CLOCK = Clock()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def town_code(five: str) -> str:
    from tenancy.models import validate_local_government_code

    for digit in "0123456789":
        try:
            validate_local_government_code(five + digit)
            return five + digit
        except Exception:
            continue
    raise ValueError(f"no check digit makes {five} a valid local government code")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Row:
    phase: str
    metric: str
    measured: str
    goal: str
    load: float


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, phase: str, metric: str, measured: str, goal: str = "") -> None:
        row = Row(phase, metric, measured, goal, load1())
        self.rows.append(row)
        print(f"  [{phase}] {metric}: {measured}  (goal {goal or '—'}, load {row.load:.2f})", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self, header: str) -> str:
        lines = [header, "", "| | metric | measured | goal | load (1 min) |", "|---|---|---|---|---|"]
        for row in self.rows:
            lines.append(f"| {row.phase} | {row.metric} | {row.measured} | {row.goal or '—'} | {row.load:.2f} |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"


class Http:
    """One keep-alive HTTP/1.1 connection to the server under test."""

    def __init__(self, port: int, timeout: float = 60):
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post_readings(self, token: str, items: list[dict]):
        body = json.dumps({"observations": items}).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return self.request("POST", "/api/v1/observations", body, headers)

    def close(self):
        self.conn.close()


def health(http_: Http) -> dict:
    status, _, body = http_.request("GET", "/health/")
    return json.loads(body)


def wait_drained(http_: Http, limit: float) -> tuple[float, float]:
    """Wait until nothing is pending in the change log. Returns (seconds waited, max lag seen)."""
    began, worst = time.monotonic(), 0.0
    while time.monotonic() - began < limit:
        events = health(http_).get("events") or {}
        worst = max(worst, events.get("lag_seconds") or 0.0)
        if events.get("pending", 1) == 0:
            return time.monotonic() - began, worst
        time.sleep(0.25)
    return math.nan, worst


# --- database and seed ---------------------------------------------------------------------------


def service_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"MQTT_URL", "SQLITE_PATH"}}
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        CHANNEL_PREFIX=PREFIX,
        CACHE_PREFIX=PREFIX,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-secret-key-not-for-production-0123456789",
        PYTHONUNBUFFERED="1",
        # The webhook receiver of phase d listens on loopback, which the outbound policy refuses
        # unless listed (docs/api.md, "Outbound destinations").
        OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
        # Phase f measures the map: on a shared, loaded machine the public page would otherwise
        # switch itself to its minimal mode (public/load.py), which has no markers to count.
        PUBLIC_PAGE_MODE=os.environ.get("PUBLIC_PAGE_MODE", "map"),
    )
    return env


def recreate_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def start_vacuum_worker(report: Report):
    """Production PostgreSQL vacuums; with `autovacuum = off` the hot tables bloat within minutes and
    the figures would measure a database no site runs. Then this run vacuums as autovacuum would
    (events.vacuum.VacuumWorker); with it on, nothing is started."""
    import psycopg

    from events.vacuum import HOT_TABLES, VacuumWorker, autovacuum_setting

    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        setting = autovacuum_setting(conn.cursor())
    if setting == "on":
        return None
    worker = VacuumWorker(DATABASE_URL)
    worker.start()
    report.note(f"autovacuum = {setting} on this server: a vacuum worker runs VACUUM (ANALYZE) on "
                f"{', '.join(HOT_TABLES)} whenever one has more dead rows than 50 + 0.2 × live "
                f"(autovacuum's defaults), checked every {worker.interval:g} s")
    return worker


def clear_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    for pattern in (f"{PREFIX}*", f":1:{PREFIX}*", "celery*", "_kombu*", "unacked*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    client.close()


def setup_django() -> None:
    os.environ.update(service_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass
class Seed:
    t0: datetime  # end of the seeded history (the seed's start); every later reading is stamped with the clock
    tokens: dict[str, str]  # town slug -> bearer token
    wave: dict[str, list[str]]  # town slug -> codes of the stations the sustained run writes
    tick_codes: list[str]  # 300 stations of bench-a for the gateway tick
    ws_code: str  # a public station of bench-a whose readings the websocket phase sends
    alert_codes: list[str]  # public stations of bench-a kept just below 氾濫注意水位 for phase d
    history_code: str
    rows: int = 0


def seed(report: Report) -> Seed:
    from django.utils import timezone as dj_timezone

    from alerts.services import alert_rules_sync_for_station
    from sensors.models import SharingGrant, Station, Threshold
    from sensors.services import observation_ingest
    from tenancy.models import Municipality
    from tenancy.services import ingest_token_create

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import RIVER_THRESHOLDS

    began = time.monotonic()
    t0 = dj_timezone.now().replace(microsecond=0)
    towns = [
        Municipality.objects.create(code=town_code(five), slug=slug, name_ja=f"{slug} 町", name_en=slug.title())
        for slug, five in TOWNS
    ]
    tokens = {town.slug: ingest_token_create(municipality=town, label="bench gateway")[1] for town in towns}

    def station(town, code, visibility, index):
        return Station(
            code=code, name_ja=f"{code} 観測所", name_en=f"{code} gauge", kind="river", municipality=town,
            lon=139.5 + (index % 40) * 0.01, lat=35.5 + (index // 40) * 0.01, unit="m", visibility=visibility,
        )

    per_town = RIVER_STATIONS // len(towns)
    wave: dict[str, list[str]] = {}
    stations = []
    for t, town in enumerate(towns):
        count = per_town + (RIVER_STATIONS - per_town * len(towns) if t == 0 else 0)
        codes = [f"{town.slug[-1].upper()}{i:04d}" for i in range(count)]
        wave[town.slug] = codes
        stations += [station(town, code, VISIBILITY_CYCLE[i % len(VISIBILITY_CYCLE)], i) for i, code in enumerate(codes)]
    town_a = towns[0]
    alert_codes = [f"AX{i:03d}" for i in range(24)]
    stations += [station(town_a, code, "public", 900 + i) for i, code in enumerate(alert_codes)]
    ws_code, history_code = "AWS01", "AHIST"
    stations += [station(town_a, ws_code, "public", 950), station(town_a, history_code, "public", 951)]
    Station.objects.bulk_create(stations)
    stations = list(Station.objects.filter(municipality__in=towns))
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    shared = [s for s in stations if s.visibility == "shared"]
    SharingGrant.objects.bulk_create(
        SharingGrant(station=s, grantor=s.municipality, grantee=towns[(towns.index(s.municipality) + 1) % len(towns)])
        for s in shared
    )
    for s in stations:
        alert_rules_sync_for_station(s)
    report.note(f"seeded {len(stations)} river stations in {len(towns)} towns "
                f"(visibility cycle {'/'.join(VISIBILITY_CYCLE)}), standard thresholds and default alert rules")

    # History through the ingestion service, so latest state and the change log are what production has.
    rows = 0
    by_town = defaultdict(list)
    steps = int(timedelta(days=HISTORY_DAYS) / HISTORY_STEP)
    for s in stations:
        if s.code == history_code:
            continue
        base = ALERT_BASE if s.code in alert_codes or s.code == ws_code else 1.5 + (hash(s.code) % 50) / 100
        by_town[s.municipality].extend(
            {"station": s.code, "observed_at": t0 - HISTORY_STEP * k, "value": round(base + 0.05 * math.sin(k / 9), 3)}
            for k in range(steps)
        )
    # 7 days of one-minute readings (10,080 rows) for the history read.
    by_town[town_a].extend(
        {"station": history_code, "observed_at": t0 - timedelta(minutes=k), "value": round(1.2 + 0.3 * math.sin(k / 500), 3)}
        for k in range(7 * 24 * 60)
    )
    for town, items in by_town.items():
        for start in range(0, len(items), 10_000):
            result = observation_ingest(municipality=town, items=items[start : start + 10_000], source="import")
            rows += result.accepted
    report.note(f"history: {rows:,} readings ({HISTORY_DAYS} day every {HISTORY_STEP.seconds // 60} min per station, "
                f"7 days every minute for {history_code}), seeded in {time.monotonic() - began:.0f} s")
    return Seed(
        t0=t0, tokens=tokens, wave={slug: [c for c in codes] for slug, codes in wave.items()},
        tick_codes=wave[town_a.slug][:300], ws_code=ws_code, alert_codes=alert_codes,
        history_code=history_code, rows=rows,
    )


# --- the process set -------------------------------------------------------------------------------


class Server:
    """`bin/serve` in its own process group; stopped on exit, error or Ctrl-C, within a bounded time."""

    def __init__(self, port: int, web_workers: int, drain_workers: int, evaluation_shards: int):
        self.port = port
        env = service_env()
        env.update(
            PORT=str(port), WEB_WORKERS=str(web_workers), DRAIN_WORKERS=str(drain_workers),
            ALERT_EVALUATION_SHARDS=str(evaluation_shards),
        )
        # Beat's state from an earlier run would make the periodic tasks due at once or not, by how long
        # ago that run was (forecast training every 10 minutes: when it runs, the drain then refreshes
        # the trained gauges' forecasts every batch). Each run starts as a new deployment does.
        for state in (ROOT / "var").glob("celerybeat-schedule*"):
            state.unlink()
        self.log = open(ROOT / "var" / "bench" / "serve.log", "w")
        self.proc = subprocess.Popen(
            ["bash", "bin/serve"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self, limit: float = 900) -> None:
        # bin/serve migrates and collects (and compresses) static files first: minutes on a busy machine.
        began = time.monotonic()
        while time.monotonic() - began < limit:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bin/serve exited with {self.proc.returncode}; see var/bench/serve.log")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health/")
                if conn.getresponse().status in (200, 503):
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"/health/ did not answer within {limit:.0f} s; see var/bench/serve.log")

    def processes(self) -> dict[str, list[int]]:
        """pid lists by kind: web (uvicorn workers), drain, celery, beat — found through /proc."""
        children: dict[int, list[int]] = defaultdict(list)
        cmdlines: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry.name))
        tree, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        kinds: dict[str, list[int]] = defaultdict(list)
        for pid in tree:
            cmd = cmdlines.get(pid, "")
            parent_cmd = next((cmdlines.get(p, "") for p, kids in children.items() if pid in kids), "")
            if "drain_events" in cmd:
                kinds["drain"].append(pid)
            elif "celery" in cmd and " beat" in cmd:
                kinds["beat"].append(pid)
            elif "celery" in cmd and " worker" in cmd:
                kinds["celery"].append(pid)
            elif "uvicorn" in parent_cmd and "spawn_main" in cmd:
                kinds["web"].append(pid)
        if not kinds["web"]:
            # One worker (--web-workers 1): uvicorn serves in its own process, with no children.
            kinds["web"] = [pid for pid in tree if "uvicorn" in cmdlines.get(pid, "") and "config.asgi" in cmdlines.get(pid, "")]
        return kinds

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def cpu_by_command() -> dict[str, float]:
    """CPU seconds of every process on the machine, summed by command name (PostgreSQL's backends,
    Redis, the benchmark's own processes...): with `machine_cpu_seconds`, where all the CPU went."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = defaultdict(float)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, tail = (entry / "stat").read_text().rpartition(")")
            fields = tail.split()
        except OSError:
            continue
        totals[head.split("(", 1)[1]] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds of the whole machine (all cores) by /proc/stat's kinds: busy is user, nice, system,
    irq and softirq; steal is time the hypervisor gave to someone else."""
    fields = [int(x) / os.sysconf("SC_CLK_TCK") for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return {"busy": user + nice + system + irq + softirq, "softirq": irq + softirq, "steal": steal}


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- a: sustained ingest --------------------------------------------------------------------------


def wave_value(code_index: int, step: int) -> float:
    """A slow wave per station; every fifth station peaks above 氾濫危険水位 (4.0 m), so evaluation
    opens, escalates and resolves alerts while the run goes on. Moves ≤ 0.12 m per 10 s: plausible."""
    amplitude = 2.2 if code_index % 5 == 0 else 0.8
    return round(2.0 + amplitude * math.sin(2 * math.pi * (step / 120 + code_index / 37)), 3)


def ingest_client(port: int, token: str, codes: list[str], start_at: float, duration: float, batch: int,
                  results) -> None:
    http_ = Http(port)
    clock = Clock()
    per_post = max(1, batch // len(codes))
    step, accepted, posts, failures, latencies = 0, 0, 0, 0, []
    indices = {code: int(code[1:]) if code[1:].isdigit() else i for i, code in enumerate(codes)}
    while time.monotonic() < start_at:
        time.sleep(0.01)
    deadline = start_at + duration
    while time.monotonic() < deadline:
        stamps = clock.stamps(per_post)
        items = [
            {"station": code, "observed_at": stamps[k], "value": wave_value(indices[code], step + k)}
            for k in range(per_post)
            for code in codes
        ]
        step += per_post
        began = time.monotonic()
        try:
            status, _, body = http_.post_readings(token, items)
        except OSError:
            failures += 1
            continue
        latencies.append(time.monotonic() - began)
        posts += 1
        if status == 200:
            accepted += json.loads(body)["accepted"]
        else:
            failures += 1
    http_.close()
    results.put({"accepted": accepted, "posts": posts, "failures": failures, "latencies": latencies, "step": step,
                 "cpu": time.process_time()})


def phase_ingest(report: Report, port: int, server: Server, seed_: Seed, args, state: dict) -> None:
    print("a: sustained ingest", flush=True)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    # Each client writes a disjoint set of one town's stations, as one gateway per area would.
    slugs = list(seed_.wave)
    assignments = []
    for c in range(args.clients):
        slug = slugs[c % len(slugs)]
        sharing = len(range(c % len(slugs), args.clients, len(slugs)))
        assignments.append((seed_.tokens[slug], seed_.wave[slug][c // len(slugs)::sharing]))
    start_at = time.monotonic() + 3
    clients = [
        ctx.Process(target=ingest_client, args=(port, token, codes, start_at, args.duration, args.batch, results), daemon=True)
        for token, codes in assignments
    ]
    for client in clients:
        client.start()
    kinds = server.processes()
    lags, stop_sampling = [], threading.Event()

    def sample():
        monitor = Http(port, timeout=10)
        while not stop_sampling.is_set():
            try:
                events = health(monitor).get("events") or {}
                lags.append((time.monotonic(), events.get("lag_seconds") or 0.0, events.get("pending") or 0))
            except (OSError, ValueError, http.client.HTTPException):
                pass
            stop_sampling.wait(1.0)
        monitor.close()

    sampler = threading.Thread(target=sample, daemon=True)
    profilers = start_profiles(kinds, args) if args.profile else []
    while time.monotonic() < start_at:
        time.sleep(0.05)
    tables_before = pg_statements_reset() if args.pg_statements else {}
    bench_backends = BenchBackendsCpu() if args.pg_statements else None
    if bench_backends is not None:
        bench_backends.start()
    cpu_before = {kind: cpu_seconds(pids) for kind, pids in kinds.items()}
    commands_before, machine_before, wall_before = cpu_by_command(), machine_cpu_seconds(), time.monotonic()
    sampler.start()
    outcomes = [results.get(timeout=args.duration + 120) for _ in clients]
    posting_ended = time.monotonic()
    load_posting = load1()
    for client in clients:
        client.join(timeout=10)
    monitor = Http(port)
    drained_after, _ = wait_drained(monitor, limit=max(120, args.duration * 3))
    monitor.close()
    stop_sampling.set()
    sampler.join(timeout=5)
    cpu_used = {kind: cpu_seconds(pids) - cpu_before.get(kind, 0.0) for kind, pids in kinds.items()}
    commands_used = {name: seconds - commands_before.get(name, 0.0) for name, seconds in cpu_by_command().items()}
    machine = {kind: seconds - machine_before[kind] for kind, seconds in machine_cpu_seconds().items()}
    busy, wall = machine["busy"], time.monotonic() - wall_before
    accepted = sum(o["accepted"] for o in outcomes)
    if args.pg_statements:
        backends_cpu = bench_backends.stop()
        report.add("a", f"CPU per 1,000 readings, PostgreSQL backends of the bench database ({len(bench_backends.last)} seen)",
                   f"{backends_cpu / accepted * 1e6:,.1f} ms ({backends_cpu:.1f} CPU-s in all)" if accepted else "no readings")
        pg_statements_report(report, accepted, tables_before)
    for kind, proc, path in profilers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        report.note(f"py-spy profile of one {kind} process during the sustained run ({path.name}), "
                    f"share of samples: {profile_summary(path)}")
    failures = sum(o["failures"] for o in outcomes)
    latencies = [x for o in outcomes for x in o["latencies"]]
    elapsed = posting_ended - start_at
    rate = accepted / elapsed if elapsed > 0 else 0
    during = [lag for at, lag, _ in lags if at <= posting_ended]
    evaluated = accepted / (elapsed + drained_after) if not math.isnan(drained_after) else math.nan
    max_lag = max((lag for _, lag, _ in lags), default=math.nan)
    keeps_up = max_lag <= 5
    state["ingest_rate"] = rate
    state["ingest_rows"] = accepted
    row = Row("a", "", "", "", load_posting)
    report.rows.append(row)
    row.metric = f"ingest, {args.clients} clients × POSTs of {args.batch} newest readings, {args.duration:.0f} s"
    row.measured = (f"{rate:,.0f} readings/s stored ({accepted:,} readings, {failures} failed POSTs); "
                    f"POST p50 {ms(pct(latencies, 50))} p95 {ms(pct(latencies, 95))}")
    row.goal = GOALS["ingest"]
    print(f"  [a] {row.metric}: {row.measured} (load {row.load:.2f})", flush=True)
    report.add("a", "change-log lag while posting (from /health/ every 1 s)",
               f"max {max_lag:.1f} s, p95 {pct(during, 95):.1f} s; {'keeps up' if keeps_up else 'DOES NOT keep up (lag > 5 s)'}",
               "≤ 5 s")
    report.add("a", "readings/s evaluated and published (until the change log is empty)",
               f"{evaluated:,.0f}/s (drained {drained_after:.1f} s after posting stopped)", GOALS["ingest"])
    for kind in ("web", "drain", "celery"):
        if accepted and kind in cpu_used:
            shares = ""
            if kind == "web" and len(kinds.get(kind, [])) > 1:
                each = [cpu_seconds([pid]) for pid in kinds[kind]]  # since each started: who got the clients
                shares = "; by process since start " + " / ".join(f"{seconds:.1f}" for seconds in each) + " CPU-s"
            report.add("a", f"CPU per 1,000 readings, {kind} ({len(kinds.get(kind, []))} processes)",
                       f"{cpu_used[kind] / accepted * 1e6:,.0f} ms ({cpu_used[kind]:.1f} CPU-s in all{shares})")
    if accepted:
        clients_cpu = sum(o["cpu"] for o in outcomes)
        report.add("a", f"CPU per 1,000 readings, ingest clients ({len(outcomes)} processes, building and posting JSON)",
                   f"{clients_cpu / accepted * 1e6:,.0f} ms ({clients_cpu:.1f} CPU-s in all)")
    if accepted:
        busiest = sorted(commands_used.items(), key=lambda item: -item[1])[:6]
        report.add("a", "CPU of the whole machine from the start of posting until drained, by process name",
                   f"{busy:.1f} CPU-s busy of {wall * (os.cpu_count() or 1):.1f} ({busy / accepted * 1e6:,.0f} ms per 1,000 "
                   f"readings; interrupts {machine['softirq']:.1f}, stolen by the host {machine['steal']:.1f}); " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in busiest if seconds >= 0.05))
    if accepted:
        copy_rate = raw_copy(accepted)
        report.add("a", f"raw COPY of {accepted:,} rows into a copy of sensors_observation (indexes included)",
                   f"{copy_rate:,.0f} rows/s")
        report.add("a", "ingest ÷ raw COPY", f"{rate / copy_rate:.1%} stored, {evaluated / copy_rate:.1%} evaluated",
                   GOALS["ratio"])
        state["copy_rate"] = copy_rate


class BenchBackendsCpu(threading.Thread):
    """--pg-statements: CPU of the PostgreSQL backends connected to the bench database only (other
    databases on a shared server, e.g. another run's tests, count in the machine's `postgres` row
    but not here), from /proc every 0.5 s: a backend seen at the first sample counts from there, one
    that started later from its start; one that exits between samples loses at most 0.5 s."""

    def __init__(self):
        super().__init__(name="bench backends cpu", daemon=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop_event = threading.Event()
        self._sampled = False

    def run(self) -> None:
        import psycopg

        with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
            while True:
                pids = [pid for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()]
                for pid in pids:
                    seconds = cpu_seconds([pid])
                    if pid not in self.first:
                        self.first[pid] = seconds if not self._sampled else 0.0
                    self.last[pid] = max(seconds, self.last.get(pid, 0.0))
                self._sampled = True
                if self._stop_event.wait(0.5):
                    break

    def stop(self) -> float:
        self._stop_event.set()
        self.join(10)
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def pg_statements_reset() -> dict:
    """--pg-statements: create pg_stat_statements in the bench database (the server must preload it)
    and reset this database's entries only (other databases on the server keep theirs); returns the
    table counters to subtract afterwards."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
        return {row[0]: row[1:] for row in conn.execute(_TABLE_COUNTERS)}


_TABLE_COUNTERS = ("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
                   "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0")


def pg_statements_report(report: Report, readings: int, tables_before: dict, top: int = 15) -> None:
    """The statements of the bench database by total execution time since `pg_statements_reset`
    (COMMIT included: deferred foreign-key checks run there), per 1,000 readings, and the rows each
    busy table got (updates that stayed HOT among them)."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC"
        ).fetchall()
        tables = {row[0]: row[1:] for row in conn.execute(_TABLE_COUNTERS)}
    total = sum(row[2] for row in rows) or 1.0
    per = 1000 / readings if readings else 0.0
    report.note(f"pg_stat_statements, bench database, from the start of posting until drained: {total / 1000:.1f} s "
                f"of execution in {sum(row[1] for row in rows):,} calls ({total * per:.2f} ms per 1,000 readings); "
                f"top {top} by total time below")
    for query, calls, spent, count in rows[:top]:
        text = " ".join(query.split())
        report.note(f"  {spent / total:5.1%} {spent * per:6.2f} ms/1k readings, {calls:,} calls, {spent / calls:.2f} ms/call, "
                    f"{count:,} rows: {text[:220]}{'…' if len(text) > 220 else ''}")
    changed = []
    for name, (ins, upd, hot, dele) in sorted(tables.items()):
        b = tables_before.get(name, (0, 0, 0, 0))
        ins, upd, hot, dele = ins - b[0], upd - b[1], hot - b[2], dele - b[3]
        if ins or upd or dele:
            changed.append(f"{name} +{ins:,}/~{upd:,} ({hot:,} HOT)/-{dele:,}")
    report.note("rows inserted/updated/deleted per table meanwhile: " + "; ".join(changed))


def start_profiles(kinds: dict[str, list[int]], args) -> list:
    """py-spy (requirements-dev.txt) samples every web process (the kernel may hand all the clients'
    keep-alive connections to one of them) and one drain process through the sustained run."""
    spy = Path(sys.executable).with_name("py-spy")
    profilers = []
    for kind, pids in (("web", kinds.get("web", [])), ("drain", kinds.get("drain", [])[:1])):
        if not spy.exists():
            continue
        for n, pid in enumerate(pids):
            path = ROOT / "var" / "bench" / f"profile-{kind}{'-' + str(n) if kind == 'web' else ''}.txt"
            proc = subprocess.Popen(
                [str(spy), "record", "--nonblocking", "--format", "raw", "--rate", "50", "--duration",
                 str(int(args.duration) + 3), "--pid", str(pid), "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            profilers.append((kind, proc, path))
    return profilers


PROJECT_PACKAGES = {"alerts", "config", "dashboard", "events", "geo", "ngsi", "sensors", "tenancy"}


def profile_summary(path: Path, top: int = 8) -> str:
    """Inclusive share of samples of the busiest project functions (collapsed stacks from py-spy)."""
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()  # a frame name may not be UTF-8
    except OSError:
        return "no profile written"
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        frames = set()
        for frame in stack.split(";"):
            function, _, where = frame.rpartition(" (")
            filename = where.split(":")[0].replace(str(ROOT) + "/", "")
            if filename.split("/")[0] in PROJECT_PACKAGES:  # py-spy shortens paths to the package
                frames.add(f"{function} ({filename})")
        for frame in frames:
            inclusive[frame] += int(count)
    busiest = sorted(inclusive.items(), key=lambda item: (-item[1], item[0]))[:top]
    return "; ".join(f"{name} {count / total:.0%}" for name, count in busiest) if total else "no samples"


def raw_copy(rows: int) -> float:
    """The floor under ingestion: COPY the same number of rows, text prepared beforehand."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_observation_copy")
        conn.execute("CREATE TABLE bench_observation_copy (LIKE sensors_observation INCLUDING ALL)")
        ids = [row[0] for row in conn.execute("SELECT id FROM sensors_station ORDER BY id LIMIT 1000")]
        start = datetime(2030, 1, 1, tzinfo=timezone.utc)
        received = iso(datetime.now(timezone.utc))
        lines = [
            f"{ids[i % len(ids)]}\t{iso(start + timedelta(seconds=10 * (i // len(ids))))}\t{2.0 + (i % 97) / 100}\tok\t{received}\thttp\n"
            for i in range(rows)
        ]
        payload = "".join(lines).encode()
        began = time.monotonic()
        with conn.cursor() as cursor:
            with cursor.copy("COPY bench_observation_copy (station_id, observed_at, value, quality, received_at, source) "
                             "FROM STDIN") as copy:
                for offset in range(0, len(payload), 1 << 20):
                    copy.write(payload[offset : offset + (1 << 20)])
        elapsed = time.monotonic() - began
        conn.execute("DROP TABLE bench_observation_copy")
    return rows / elapsed


# --- b: gateway tick ------------------------------------------------------------------------------


def phase_tick(report: Report, port: int, server: Server, seed_: Seed, args, state: dict) -> None:
    print("b: 300-station gateway tick", flush=True)
    http_ = Http(port)
    token = seed_.tokens[TOWNS[0][0]]
    timings, failures = [], 0
    indices = {code: i for i, code in enumerate(seed_.tick_codes)}
    web = server.processes()["web"]
    # One untimed tick first: the serving process opens its connection pool at its first request,
    # and only backends alive from start to end can be measured.
    at = CLOCK.stamp()
    http_.post_readings(token, [{"station": c, "observed_at": at, "value": wave_value(indices[c], 0)} for c in seed_.tick_codes])
    backends = {pid: cpu_seconds([pid]) for pid in asgi_backends()}
    cpu_web = cpu_seconds(web)
    for tick in range(args.ticks):
        at = CLOCK.stamp()
        items = [{"station": c, "observed_at": at, "value": wave_value(indices[c], tick)} for c in seed_.tick_codes]
        began = time.monotonic()
        status, _, body = http_.post_readings(token, items)
        timings.append(time.monotonic() - began)
        failures += status != 200 or json.loads(body)["accepted"] != len(items)
        time.sleep(args.tick_interval)
    # Load-independent: CPU seconds the web processes and their PostgreSQL backends spent per tick
    # (the drain's are not in it; it runs between ticks in its own processes).
    cpu_web = cpu_seconds(web) - cpu_web
    report.add("b", f"300-station gateway tick, {args.ticks} ticks {args.tick_interval:.1f} s apart",
               f"p50 {ms(pct(timings, 50))}, p95 {ms(pct(timings, 95))}" + (f", {failures} failed" if failures else ""),
               GOALS["tick"])
    report.add("b", f"CPU per tick, web ({len(web)} processes)",
               f"{cpu_web / args.ticks * 1000:.1f} ms ({cpu_web / args.ticks / len(seed_.tick_codes) * 1e6:.0f} µs per reading)")
    lasting = sorted(set(backends) & set(asgi_backends()))
    if lasting:
        cpu_database = sum(cpu_seconds([pid]) - backends[pid] for pid in lasting)
        report.add("b", f"CPU per tick, the web processes' PostgreSQL backends ({len(lasting)} pooled)",
                   f"{cpu_database / args.ticks * 1000:.1f} ms")
    wait_drained(http_, 120)
    http_.close()


def asgi_backends() -> list[int]:
    """pids of the PostgreSQL backends of the web processes' connection pools (same machine)."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'mizumori-asgi' AND datname = current_database()"
        ).fetchall()
    return [pid for (pid,) in rows]


# --- c: websocket fan-out -------------------------------------------------------------------------


def ws_clients_main(port: int, count: int, snapshot: bool, commands, replies) -> None:
    """A process holding `count` anonymous /ws/live/ clients subscribed to river; it records when each
    client first sees each (station, observed_at) in a `stations` message."""
    raise_fd_limit()
    asyncio.run(_ws_clients(port, count, snapshot, commands, replies))


async def _ws_clients(port, count, snapshot, commands, replies):
    import websockets

    seen: dict[str, list[float]] = defaultdict(list)
    connected, failed = [], 0
    gate = asyncio.Semaphore(25)
    stop = asyncio.Event()

    async def client(n):
        nonlocal failed
        try:
            async with gate:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/live/?view=public", origin=f"http://127.0.0.1:{port}",
                    open_timeout=60, max_size=None, ping_interval=None,
                )
                await ws.send(json.dumps({"type": "subscribe", "layers": ["river"], "snapshot": snapshot}))
                for _ in range(3):
                    first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if first["type"] == "snapshot" or (first["type"] == "subscribed" and not snapshot):
                        break
        except Exception:
            failed += 1
            return
        connected.append(ws)
        try:
            while not stop.is_set():
                text = await ws.recv()
                if '"stations"' not in text[:40]:
                    continue
                received = time.monotonic()
                for feature in json.loads(text).get("features", []):
                    properties = feature.get("properties", {})
                    seen[f"{properties.get('code')}@{properties.get('observed_at')}"].append(received)
        except Exception:
            return

    tasks = [asyncio.create_task(client(n)) for n in range(count)]
    began = time.monotonic()
    while len(connected) + failed < count and time.monotonic() - began < 600:
        await asyncio.sleep(0.1)
    replies.put({"connected": len(connected), "failed": failed, "seconds": time.monotonic() - began})
    loop = asyncio.get_running_loop()
    command = await loop.run_in_executor(None, commands.get, True, 900)
    if command == "report":
        replies.put(dict(seen))
    stop.set()
    for ws in connected:
        await ws.close()
    for task in tasks:
        task.cancel()


def redis_subscribers_main(count: int, channel: str, commands, replies) -> None:
    raise_fd_limit()
    asyncio.run(_redis_subscribers(count, channel, commands, replies))


async def _redis_subscribers(count, channel, commands, replies):
    import redis.asyncio as aioredis

    seen: dict[str, list[float]] = defaultdict(list)
    clients, pubsubs = [], []
    for _ in range(count):
        client = aioredis.Redis.from_url(REDIS_URL)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        clients.append(client)
        pubsubs.append(pubsub)

    async def listen(pubsub):
        async for message in pubsub.listen():
            if message["type"] == "message":
                seen[json.loads(message["data"])["k"]].append(time.monotonic())

    tasks = [asyncio.create_task(listen(p)) for p in pubsubs]
    replies.put({"connected": count})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, commands.get, True, 900)
    replies.put(dict(seen))
    for task in tasks:
        task.cancel()
    for pubsub, client in zip(pubsubs, clients):
        await pubsub.aclose()
        await client.aclose()


def fan_out_latencies(sent: dict[str, float], seen: dict[str, list[float]], expected: int) -> tuple[list[float], int]:
    latencies, missing = [], 0
    for key, at in sent.items():
        times = seen.get(key, [])
        latencies += [t - at for t in times]
        missing += max(0, expected - len(times))
    return latencies, missing


def phase_websocket(report: Report, port: int, server: Server, seed_: Seed, args, state: dict) -> None:
    print(f"c: POST -> {args.ws_clients} websocket clients", flush=True)
    ctx = multiprocessing.get_context("spawn")
    http_ = Http(port)
    wait_drained(http_, 120)
    shares = [args.ws_clients // args.ws_processes + (1 if i < args.ws_clients % args.ws_processes else 0)
              for i in range(args.ws_processes)]
    pipes = [(ctx.Queue(), ctx.Queue()) for _ in shares]
    procs = [ctx.Process(target=ws_clients_main, args=(port, n, args.ws_snapshot, c, r), daemon=True)
             for n, (c, r) in zip(shares, pipes)]
    try:
        for proc in procs:
            proc.start()
        ready = [r.get(timeout=660) for _, r in pipes]
        connected = sum(x["connected"] for x in ready)
        report.add("c", f"{args.ws_clients} websocket clients connect and subscribe "
                        f"({'with' if args.ws_snapshot else 'without'} snapshot, 25 at a time per process)",
                   f"{connected} connected, {sum(x['failed'] for x in ready)} failed, "
                   f"{max(x['seconds'] for x in ready):.1f} s")
        kinds = server.processes()
        rss = [rss_mb(pid) for pid in kinds.get("web", [])]
        if rss:
            report.add("c", f"ASGI RSS with {connected} clients ({len(rss)} uvicorn workers)",
                       f"max {max(rss):,.0f} MB, sum {sum(rss):,.0f} MB", GOALS["rss"])
        token = seed_.tokens[TOWNS[0][0]]
        sent: dict[str, float] = {}
        # CPU of the ASGI processes while the messages go out: per delivery, whatever the load
        # (it includes the POSTs themselves and the processes' idle ticks, the same in both designs).
        web_cpu = cpu_seconds(kinds.get("web", []))
        for sample in range(args.samples):
            at = CLOCK.stamp()
            value = round(ALERT_BASE - 0.01 * (sample % 5), 3)
            began = time.monotonic()
            http_.post_readings(token, [{"station": seed_.ws_code, "observed_at": at, "value": value}])
            sent[f"{seed_.ws_code}@{at}"] = began
            time.sleep(args.sample_interval)
        time.sleep(2)
        web_cpu = cpu_seconds(kinds.get("web", [])) - web_cpu
        for commands, _ in pipes:
            commands.put("report")
        seen: dict[str, list[float]] = defaultdict(list)
        for _, replies in pipes:
            for key, times in replies.get(timeout=120).items():
                seen[key] += times
        latencies, missing = fan_out_latencies(normalise_keys(sent), normalise_keys(seen), connected)
        ws_p95 = pct(latencies, 95)
        report.add("c", f"POST → `stations` message at {connected} clients, {args.samples} POSTs "
                        f"{args.sample_interval:.1f} s apart",
                   f"p50 {ms(pct(latencies, 50))}, p95 {ms(ws_p95)}, {missing} deliveries missing", GOALS["ws"])
        if latencies and kinds.get("web"):
            report.add("c", f"CPU of the ASGI processes meanwhile ({len(kinds['web'])} processes, from /proc)",
                       f"{web_cpu:.2f} s, {web_cpu / len(latencies) * 1e6:,.0f} µs per delivery")
    finally:
        for commands, _ in pipes:
            commands.put("close")
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    http_.close()

    # The same fan-out with nothing but Redis: 1,000 subscriber connections on one channel.
    commands, replies = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=redis_subscribers_main, args=(args.ws_clients, f"{PREFIX}-raw", commands, replies),
                       daemon=True)
    proc.start()
    try:
        replies.get(timeout=300)
        import redis

        publisher = redis.Redis.from_url(REDIS_URL)
        padding = "x" * 900  # about the size of one station's `stations` message
        sent = {}
        for sample in range(args.samples):
            key = f"raw-{sample}"
            sent[key] = time.monotonic()
            publisher.publish(f"{PREFIX}-raw", json.dumps({"k": key, "pad": padding}))
            time.sleep(min(args.sample_interval, 0.5))
        time.sleep(1)
        commands.put("report")
        seen = replies.get(timeout=120)
        publisher.close()
        raw, missing = fan_out_latencies(sent, seen, args.ws_clients)
        report.add("c", f"raw Redis PUBLISH → {args.ws_clients} subscriber connections (one channel, redis-py asyncio, "
                        "one client process)", f"p50 {ms(pct(raw, 50))}, p95 {ms(pct(raw, 95))}, {missing} missing")
        if latencies and raw:
            report.add("c", "websocket p95 ÷ raw Redis p95", f"{ws_p95 / pct(raw, 95):.1f}×", GOALS["ws_ratio"])
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


def normalise_keys(data: dict) -> dict:
    """`code@time` keys with the time as UTC epoch seconds, whatever offset the server wrote."""
    result = {}
    for key, value in data.items():
        code, _, when = key.partition("@")
        try:
            result[f"{code}@{datetime.fromisoformat(when).timestamp():.6f}"] = value
        except ValueError:
            continue
    return result


# --- d: alerts on the websocket and by webhook ------------------------------------------------------


class WebhookReceiver:
    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                received.append((time.monotonic(), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def first_mention(self, code: str, *, after: float = 0.0, min_level: int = 0) -> float | None:
        """When the first notification about `code`'s alert at `min_level` or above arrived after `after`."""
        for at, body in list(self.received):
            if at < after or f'"{code}"'.encode() not in body:
                continue
            if min_level:
                try:
                    alert = json.loads(body)["alert"]
                except (ValueError, KeyError, TypeError):
                    continue
                if (alert.get("level") or 0) < min_level:
                    continue
            return at
        return None

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class AlertListener:
    """One anonymous /ws/live/ client on the alerts layer, in a thread with its own event loop."""

    def __init__(self, port: int):
        self.port, self.messages, self.ready = port, [], threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)
        self.stop = None
        self.thread.start()

    async def _run(self):
        import websockets

        self.stop = asyncio.Event()
        async with websockets.connect(f"ws://127.0.0.1:{self.port}/ws/live/?view=public",
                                      origin=f"http://127.0.0.1:{self.port}", max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "layers": ["alerts"], "snapshot": False}))
            self.ready.set()
            while not self.stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                self.messages.append((time.monotonic(), text))

    def first_mention(self, code: str, *, after: float = 0.0) -> float | None:
        return next(
            (at for at, text in list(self.messages) if at >= after and '"alert"' in text and f'"{code}"' in text), None
        )

    def close(self):
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=10)


def phase_alerts(report: Report, port: int, seed_: Seed, args, state: dict) -> None:
    print("d: crossing -> alert on websocket and webhook", flush=True)
    from alerts.models import NotificationChannel
    from tenancy.models import Municipality

    receiver = WebhookReceiver()
    NotificationChannel.objects.create(
        municipality=Municipality.objects.get(slug=TOWNS[0][0]), kind="webhook", scope="own",
        target=receiver.url, secret="bench-webhook-secret", label="bench receiver",
    )
    listener = AlertListener(port)
    http_ = Http(port)
    try:
        if not listener.ready.wait(30):
            report.add("d", "alert websocket", "could not subscribe within 30 s")
            return
        wait_drained(http_, 120)
        token = seed_.tokens[TOWNS[0][0]]
        ws_latencies, hook_latencies, ws_missing, hook_missing, early = [], [], 0, 0, 0
        for sample, code in enumerate(seed_.alert_codes[: args.alert_samples]):
            # The rise and the crossing reading, each evaluated before the next is sent, then the
            # reading that confirms the crossing: the public alert follows it, and that POST is timed.
            first = time.monotonic()
            for value in ALERT_LEAD_IN:
                http_.post_readings(token, [{"station": code, "observed_at": CLOCK.stamp(), "value": value}])
                wait_drained(http_, args.alert_timeout)
            if listener.first_mention(code, after=first) is not None:
                early += 1  # public before confirmation: the defaults changed (or the jump path raised it)
            at = CLOCK.stamp()
            began = time.monotonic()
            http_.post_readings(token, [{"station": code, "observed_at": at, "value": ALERT_CONFIRMING}])
            deadline = began + args.alert_timeout
            ws_at = hook_at = None
            while time.monotonic() < deadline and (ws_at is None or hook_at is None):
                ws_at = ws_at or listener.first_mention(code, after=began)
                hook_at = hook_at or receiver.first_mention(code, after=began, min_level=3)
                time.sleep(0.01)
            if ws_at is None:
                ws_missing += 1
            else:
                ws_latencies.append(ws_at - began)
            if hook_at is None:
                hook_missing += 1
            else:
                hook_latencies.append(hook_at - began)
        report.add("d", f"POST of the reading confirming a crossing of 避難判断水位 → public `alert` message on a "
                        f"websocket, {args.alert_samples} crossings",
                   f"p50 {ms(pct(ws_latencies, 50))}, p95 {ms(pct(ws_latencies, 95))}, {ws_missing} not within "
                   f"{args.alert_timeout:.0f} s, {early} public before the confirming reading", GOALS["alert_ws"])
        report.add("d", "POST of the confirming reading → level-3 webhook received (Celery dispatch, HMAC-signed POST "
                        "to 127.0.0.1)",
                   f"p50 {ms(pct(hook_latencies, 50))}, p95 {ms(pct(hook_latencies, 95))}, {hook_missing} not within "
                   f"{args.alert_timeout:.0f} s", GOALS["webhook"])
    finally:
        listener.close()
        receiver.close()
        http_.close()


# --- e: history read ------------------------------------------------------------------------------


def database_backend_pids() -> list[int]:
    """The PostgreSQL server processes serving the benchmark's database (the server runs on this
    machine), to count their CPU time."""
    import psycopg

    with psycopg.connect(DATABASE_URL, connect_timeout=10) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()]


def phase_history(report: Report, port: int, server: Server, seed_: Seed, args) -> None:
    print("e: 7-day history", flush=True)
    import psycopg

    with psycopg.connect(DATABASE_URL, connect_timeout=10) as conn:
        (table_rows,) = conn.execute("SELECT count(*) FROM sensors_observation").fetchone()
    http_ = Http(port)
    query = urlencode({"since": iso(seed_.t0 - timedelta(days=7)), "until": iso(seed_.t0)})
    timings, rows, status = [], 0, 0
    http_.request("GET", f"/api/v1/stations/{seed_.history_code}/observations?{query}")  # connections opened
    web, database = server.processes()["web"], database_backend_pids()
    cpu_before = cpu_seconds(web), cpu_seconds(database)
    for _ in range(args.reads):
        began = time.monotonic()
        status, _, body = http_.request("GET", f"/api/v1/stations/{seed_.history_code}/observations?{query}")
        timings.append(time.monotonic() - began)
        if status == 200:
            document = json.loads(body)
            rows = len(document.get("observations", document) if isinstance(document, dict) else document)
    http_.close()
    web_cpu, database_cpu = cpu_seconds(web) - cpu_before[0], cpu_seconds(database) - cpu_before[1]
    report.add("e", f"7-day history of one station over HTTP (JSON, {args.reads} reads), table of {table_rows:,} rows",
               f"p50 {ms(pct(timings, 50))}, p95 {ms(pct(timings, 95))}; HTTP {status}, {rows:,} rows; "
               f"CPU per read: web processes {web_cpu / args.reads * 1000:.1f} ms, "
               f"PostgreSQL {database_cpu / args.reads * 1000:.1f} ms",
               GOALS["history"] + " (at 10M+ rows)")


# --- f: the public page with 2,000 stations -------------------------------------------------------


def seed_map_stations(port: int, target: int, report: Report) -> int:
    """Top the public river stations up to `target`, each with a reading (through the HTTP API)."""
    from sensors.models import Station, Threshold
    from tenancy.models import Municipality
    from tenancy.services import ingest_token_create

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import RIVER_THRESHOLDS

    existing = Station.objects.filter(visibility="public").count()
    missing = max(0, target - existing)
    if missing:
        slug, five = MAP_TOWN
        town = Municipality.objects.create(code=town_code(five), slug=slug, name_ja="地図町", name_en="Map Town")
        token = ingest_token_create(municipality=town, label="bench map")[1]
        created = Station.objects.bulk_create(
            Station(code=f"M{i:04d}", name_ja=f"M{i:04d} 観測所", name_en=f"M{i:04d} gauge", kind="river",
                    municipality=town, lon=139.0 + (i % 50) * 0.02, lat=35.0 + (i // 50) * 0.02, unit="m",
                    visibility="public")
            for i in range(missing)
        )
        Threshold.objects.bulk_create(
            Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
            for s in created for n, ja, en, lv, v in RIVER_THRESHOLDS
        )
        http_ = Http(port)
        now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
        for start in range(0, missing, 1000):
            http_.post_readings(token, [{"station": s.code, "observed_at": iso(now), "value": 1.0 + (i % 300) / 100}
                                        for i, s in enumerate(created[start : start + 1000])])
        wait_drained(http_, 120)
        http_.close()
    total = Station.objects.filter(visibility="public").count()
    report.note(f"map: {total:,} public stations ({missing:,} added in town {MAP_TOWN[0]}, each with a reading)")
    return total


def phase_page(report: Report, port: int, args) -> None:
    print("f: / with 2,000 public stations", flush=True)
    total = seed_map_stations(port, args.map_stations, report)
    http_ = Http(port, timeout=180)
    # The public page is its shell, its base map and its snapshot document (docs/api.md, "The public
    # page"); each is built at most once per tick, so later reads within a tick are the cached build.
    for encoding in ("gzip", None):
        timings, size = [], 0
        headers = {"Accept-Encoding": encoding} if encoding else {}
        for _ in range(max(1, args.reads // 4)):
            began = time.monotonic()
            size, raw = 0, 0
            for path in ("/", "/public/basemap.js", "/api/v1/public/snapshot"):
                status, response_headers, body = http_.request("GET", path, headers=headers)
                size += len(body)
                served = dict((k.lower(), v) for k, v in response_headers).get("content-encoding", "identity")
                raw += len(gzip.decompress(body)) if served == "gzip" else len(body)
            timings.append(time.monotonic() - began)
        report.add("f", f"GET / + base map + snapshot ({total:,} public stations), Accept-Encoding: {encoding or 'none'}",
                   f"{size / 1000:,.0f} KB transferred ({served}), server time p50 {ms(pct(timings, 50))} "
                   f"p95 {ms(pct(timings, 95))}; HTTP {status}",
                   GOALS["page_bytes"] if encoding else "")
        if encoding == "gzip":
            report.add("f", "the same, uncompressed", f"{raw / 1000:,.0f} KB")
    http_.close()
    report.add("f", f"Chromium: navigation start → {total:,} `{args.marker_selector}` in the DOM",
               chromium_time_to_markers(port, total, args), GOALS["marker"])


def chromium_time_to_markers(port: int, total: int, args) -> str:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for _ in range(args.browser_loads):
                page = browser.new_page()
                try:
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=30_000)
                    page.wait_for_function(
                        "([selector, total]) => document.querySelectorAll(selector).length >= total",
                        arg=[args.marker_selector, total], polling="raf", timeout=30_000,
                    )
                    results.append(page.evaluate("performance.now()") / 1000)
                except PlaywrightError as exc:
                    count = page.evaluate(f"document.querySelectorAll({json.dumps(args.marker_selector)}).length")
                    return f"not reached in 30 s: {count} markers ({str(exc).splitlines()[0][:80]})"
                finally:
                    page.close()
        finally:
            browser.close()
    return f"p50 {ms(pct(results, 50))}, worst {ms(max(results))} over {len(results)} loads"


# --- m: the in-process micro-benchmark ----------------------------------------------------------


def phase_micro(report: Report) -> None:
    print("m: bench/run.py (in-process, its own test database)", flush=True)
    env = service_env()
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    for line in result.stdout.splitlines():
        if ": " in line and not line.startswith("database"):
            subject, _, figure = line.partition(": ")
            report.add("m", f"in-process {subject}: {figure.split(':')[0]}", figure.split(":", 1)[-1].strip())
    if result.returncode:
        report.add("m", "bench/run.py", f"exited {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short durations and fewer clients (development)")
    parser.add_argument("--only", default="a,b,c,d,e,f,m", help="phases to run, e.g. a,c (default all)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of sustained ingest (default 60)")
    parser.add_argument("--clients", type=int, default=None, help="ingest client processes (default 3)")
    parser.add_argument("--batch", type=int, default=1000, help="readings per ingest POST")
    parser.add_argument("--ws-clients", type=int, default=None, help="websocket clients (default 1000)")
    parser.add_argument("--ws-processes", type=int, default=2, help="processes holding the websocket clients")
    parser.add_argument("--no-ws-snapshot", dest="ws_snapshot", action="store_false",
                        help="websocket clients subscribe without asking for the snapshot")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", 2)))
    parser.add_argument("--drain-workers", type=int, default=int(os.environ.get("DRAIN_WORKERS", 2)))
    parser.add_argument("--evaluation-shards", type=int, default=int(os.environ.get("ALERT_EVALUATION_SHARDS", 0)),
                        help="alert evaluation shards (default: one per drain worker, as make serve)")
    parser.add_argument("--map-stations", type=int, default=2000)
    parser.add_argument("--marker-selector", default=MARKER_SELECTOR)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy every web process and one drain process during the sustained run (var/bench/profile-*.txt)")
    parser.add_argument("--pg-statements", action="store_true",
                        help="phase a: the bench database's statements by execution time (pg_stat_statements, "
                             "which the server must preload) and rows written per table, from posting until drained")
    parser.add_argument("--startup-timeout", type=float, default=900,
                        help="seconds bin/serve may take to answer /health/ (migrate and collectstatic included; "
                             "minutes on a loaded machine)")
    parser.add_argument("--reuse-seed", action="store_true",
                        help="development only: keep the previous run's database and seed instead of starting fresh")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "latest.md"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 0)),
                        help="loopback port of the process set (default BENCH_PORT, else any free one)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (10 if quick else 60)
    args.clients = args.clients or (2 if quick else 3)
    args.ws_clients = args.ws_clients or (100 if quick else 1000)
    args.ticks = 10 if quick else 50
    args.tick_interval = 0.3 if quick else 0.5
    args.samples = 5 if quick else 20
    args.sample_interval = 1.0 if quick else 1.5
    args.alert_samples = 3 if quick else 10
    args.alert_timeout = 15.0
    args.reads = 5 if quick else 20
    args.browser_loads = 1 if quick else 3
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.phases) - set("abcdefm")
    if unknown:
        parser.error(f"--only: unknown phase(s) {', '.join(sorted(unknown))}; phases are a,b,c,d,e,f,m")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    if not (ROOT / ".venv" / "bin" / "python").exists():
        print("bench/e2e.py starts bin/serve, which needs .venv in the repository (make install).", file=sys.stderr)
        return 2
    report = Report()
    started = datetime.now(timezone.utc)
    print(f"Mizumori end-to-end benchmark, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"load {' / '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    saved = ROOT / "var" / "bench" / "seed.json"
    if args.reuse_seed and saved.exists():
        setup_django()
        seed_ = Seed(**{**json.loads(saved.read_text()), "t0": datetime.fromisoformat(json.loads(saved.read_text())["t0"])})
        report.note("--reuse-seed: the database of the previous run, with whatever earlier runs added")
    else:
        recreate_database()
        clear_redis()
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        seed_ = seed(report)
        saved.write_text(json.dumps({**seed_.__dict__, "t0": seed_.t0.isoformat()}))
    port = args.port or free_port()
    shards = args.evaluation_shards or args.drain_workers
    server = Server(port, args.web_workers, args.drain_workers, shards)
    interrupted = False
    state: dict = {}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    vacuum_worker = None
    try:
        server.wait_healthy(args.startup_timeout)
        vacuum_worker = start_vacuum_worker(report)
        http_ = Http(port)
        waited, _ = wait_drained(http_, 300)
        http_.close()
        report.note(f"process set: bin/serve on 127.0.0.1:{port}, WEB_WORKERS={args.web_workers}, "
                    f"DRAIN_WORKERS={args.drain_workers}, ALERT_EVALUATION_SHARDS={shards}, Celery worker and beat; MQTT consumer not started; "
                    f"seeded history's change log drained in {waited:.0f} s")
        phases = {
            "a": lambda: phase_ingest(report, port, server, seed_, args, state),
            "b": lambda: phase_tick(report, port, server, seed_, args, state),
            "c": lambda: phase_websocket(report, port, server, seed_, args, state),
            "d": lambda: phase_alerts(report, port, seed_, args, state),
            "e": lambda: phase_history(report, port, server, seed_, args),
            "f": lambda: phase_page(report, port, args),
        }
        for name in "abcdef":
            if name in args.phases:
                try:
                    phases[name]()
                except (OSError, RuntimeError, ValueError, http.client.HTTPException, queue.Empty) as exc:
                    # One phase failing (a timeout under load) must not hide the others' figures.
                    report.add(name, "phase failed", f"{type(exc).__name__}: {str(exc)[:120]}")
    except KeyboardInterrupt:
        interrupted = True
        report.note("interrupted: the figures above are partial")
    finally:
        print("stopping the process set", flush=True)
        server.stop()
        if vacuum_worker is not None:
            vacuum_worker.stop()
            report.note(f"vacuum worker (autovacuum is off on this server): {vacuum_worker.summary()}")
    if "m" in args.phases and not interrupted:
        phase_micro(report)
    header = (f"Measured {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs (shared machine; load is the "
              f"1-minute load average when each figure was taken), `bench/e2e.py {' '.join(sys.argv[1:] if argv is None else argv)}`")
    table = report.markdown(header)
    Path(args.output).write_text(table, encoding="utf-8")
    print()
    print(table)
    print(f"written to {args.output}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
