"""Where the public map's time goes in Chromium: resource timings, Chromium's own counters (script,
style, layout) and the JavaScript functions with the most self time, for one load of `/`.

    .venv/bin/python bench/map_profile.py --url http://127.0.0.1:8000/ [--markers 2000] [--loads 3]

Run against a server that has the stations already (e.g. after `bench/e2e.py --only f`, the bench
database served by `uvicorn config.asgi:application`). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def self_times(profile: dict) -> Counter:
    nodes = {node["id"]: node for node in profile["nodes"]}
    interval = {}
    samples, deltas = profile.get("samples", []), profile.get("timeDeltas", [])
    for sample, delta in zip(samples, deltas[1:] + [0]):
        interval[sample] = interval.get(sample, 0) + delta
    totals: Counter = Counter()
    for node_id, micros in interval.items():
        frame = nodes[node_id]["callFrame"]
        url = frame.get("url", "").rsplit("/", 1)[-1]
        totals[f"{frame.get('functionName') or '(anonymous)'} {url}:{frame.get('lineNumber', 0) + 1}"] += micros
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--markers", type=int, default=2000)
    parser.add_argument("--selector", default=".mz-station-icon")
    parser.add_argument("--loads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for load in range(args.loads):
            page = browser.new_page()
            page.on("console", lambda message: message.type in ("error", "warning") and print("  console:", message.text[:200]))
            page.on("pageerror", lambda error: print("  page error:", str(error)[:200]))
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            cdp.send("Profiler.start")
            page.goto(args.url, wait_until="commit", timeout=240_000)
            page.wait_for_function(
                "([selector, total]) => document.querySelectorAll(selector).length >= total",
                arg=[args.selector, args.markers], polling="raf", timeout=240_000,
            )
            done = page.evaluate("performance.now()")
            profile = cdp.send("Profiler.stop")["profile"]
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            resources = page.evaluate(
                "performance.getEntriesByType('resource').map(e => [e.name.split('/').slice(-2).join('/'),"
                " Math.round(e.startTime), Math.round(e.responseEnd)])"
            )
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            print(f"load {load + 1}: {args.markers} markers at {done:,.0f} ms, load {os.getloadavg()[0]:.2f}")
            navigation = json.loads(nav)
            print(f"  document: response end {navigation['responseEnd']:,.0f} ms, DOMContentLoaded {navigation['domContentLoadedEventEnd']:,.0f} ms")
            for name, start, end in resources:
                print(f"  {name[:60]:60s} {start:6,d} → {end:6,d} ms")
            for name in ("ScriptDuration", "RecalcStyleDuration", "LayoutDuration", "TaskDuration", "Nodes", "LayoutCount", "RecalcStyleCount"):
                value = metrics.get(name)
                if value is not None:
                    print(f"  {name}: {value * 1000:,.0f} ms" if name.endswith("Duration") else f"  {name}: {value:,.0f}")
            totals = self_times(profile)
            all_micros = sum(totals.values())
            print(f"  JS profile: {all_micros / 1000:,.0f} ms sampled; top self time:")
            for name, micros in totals.most_common(args.top):
                print(f"    {micros / 1000:7,.1f} ms  {name}")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
