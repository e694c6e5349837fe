"""Playback at 60× in Chromium: how often the public map redraws while the time slider plays.

    BENCH_DATABASE=mizumori_bench_replay nice .venv/bin/python bench/asof.py --keep --only map
    BENCH_DATABASE=mizumori_bench_replay nice .venv/bin/python bench/playback.py [--seconds 20]

Uses a database bench/asof.py kept (2,000 public river gauges and their readings), serves it with
`manage.py runserver` on a free loopback port (DEBUG off, embedded channel layer), opens `/` in
Debian's Chromium at a moment 30 hours back, picks 60× and plays. Counts the frames the page shows
(each `data-replay-at` change of #mz-replay: the stations of a moment drawn from a batch of
`GET /api/v1/replay/frames`, shelters and alerts following by their own `?at=` reads) per second of
wall time, the gaps between them, and the requests made while playing (frame batches; whole as-of
reads, which mean frames fell back to full maps). Issue 14's target: at
least two frames a second. Prints figures with the load average; asserts nothing.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from urllib.request import urlopen

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "mizumori_bench_asof")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def database_url() -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{BENCH_DATABASE}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def newest_reading() -> datetime:
    with psycopg.connect(database_url()) as connection:
        return connection.execute("SELECT max(observed_at) FROM sensors_observation").fetchone()[0]


def serve(port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "MQTT_URL", "SQLITE_PATH", "SECRET_KEY"}}
    env.update(
        # No SECRET_KEY: the embedded default's settings (a set key asks for production services).
        DATABASE_URL=database_url(), DEBUG="0", DJANGO_SETTINGS_MODULE="config.settings", ALLOWED_HOSTS="127.0.0.1",
        PUBLIC_PAGE_MODE="map", LOG_LEVEL="WARNING",
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/health/", timeout=5):
                return server
        except OSError as error:
            if getattr(error, "code", None):  # an HTTP answer (503 while degraded) is an answer
                return server
            time.sleep(1)
    server.kill()
    raise SystemExit("the server did not answer within 400 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--speed", default="60")
    parser.add_argument("--port", type=int, help="the dev server's port (default: any free one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    start = newest_reading() - timedelta(hours=30)
    port = args.port or free_port()
    server = serve(port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # The measuring script is injected by Playwright; the site's CSP forbids eval for the page itself.
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            at = quote(start.astimezone(UTC).isoformat())
            page.goto(f"http://127.0.0.1:{port}/?at={at}", timeout=300_000)
            try:
                page.wait_for_function(
                    "document.getElementById('mz-replay') && document.getElementById('mz-replay').dataset.replayState === 'shown'",
                    timeout=300_000,
                )
            except Exception:
                state = page.evaluate("(document.getElementById('mz-replay') || {dataset: {}}).dataset.replayState")
                raise SystemExit(f"the past map was not shown within 300 s (replay state {state!r}); "
                                 f"load average {os.getloadavg()[0]:.1f}") from None
            markers = page.evaluate("Object.keys((window.Mizumori || {}).stationMarkers || {}).length")
            page.evaluate(
                """() => {
                    const bar = document.getElementById('mz-replay');
                    window.__frames = [];
                    new MutationObserver(() => window.__frames.push([performance.now(), bar.dataset.replayAt]))
                        .observe(bar, {attributes: true, attributeFilter: ['data-replay-at']});
                }"""
            )
            # Whole as-of reads while playing mean frames fell back to full maps (a marker missing).
            asked = []
            page.on("request", lambda request: asked.append(request.url))
            page.select_option("#mz-replay-speed", args.speed)
            page.click("#mz-replay-play")
            began = page.evaluate("performance.now()")
            page.wait_for_timeout(args.seconds * 1000)
            frames = page.evaluate("window.__frames")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = [t for t, _ in frames if t >= began]
    gaps = [(b - a) / 1000 for a, b in zip(times, times[1:])]
    shown = [datetime.fromisoformat(moment) for _, moment in frames]
    advanced = (shown[-1] - shown[0]).total_seconds() / 60 if len(shown) > 1 else 0
    print(f"playback {args.speed}×, {markers:,} stations: {len(times)} frames in {args.seconds:.0f} s = "
          f"{len(times) / args.seconds:.2f} frames/s (target ≥ 2); gap median "
          f"{statistics.median(gaps) * 1000 if gaps else float('nan'):.0f} ms, max {max(gaps, default=0) * 1000:.0f} ms; "
          f"map advanced {advanced:.0f} min; while playing {sum('/api/v1/replay/frames?' in url for url in asked)} "
          f"frame batches and {sum('/api/v1/stations?at=' in url for url in asked)} whole as-of reads; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
