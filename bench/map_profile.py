"""Where the public map's time goes in Chromium: resource timings, the page's own marks
(static/mizumori/public.js: `mz:` user timings), Chromium's counters (script, style, layout), the
JavaScript functions with the most self time and, with --trace, the renderer main thread's tasks
over 10 ms with what they spent their time on, for each load of `/`.

    .venv/bin/python bench/map_profile.py --url http://127.0.0.1:8000/ [--markers 2000] [--loads 3] [--trace]
    .venv/bin/python bench/map_profile.py --url ... --loads 5 --quiet   # only the time to the last marker

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


# Trace events that say what a main-thread task did (devtools.timeline), by the name printed.
WORK = {
    "ParseHTML": "parse HTML",
    "EvaluateScript": "evaluate script",
    "v8.compile": "compile",
    "v8.compileModule": "compile",
    "FunctionCall": "JS",
    "TimerFire": "JS",
    "FireAnimationFrame": "JS",
    "EventDispatch": "JS",
    "RunMicrotasks": "JS",
    "v8.run": "JS",
    "UpdateLayoutTree": "style",
    "ScheduleStyleRecalculation": "style",
    "Layout": "layout",
    "PrePaint": "paint",
    "Paint": "paint",
    "Layerize": "paint",
    "UpdateLayer": "paint",
    "CompositeLayers": "paint",
    "Commit": "paint",
    "MajorGC": "GC",
    "MinorGC": "GC",
    "V8.GC_SCAVENGER": "GC",
    "ParseAuthorStyleSheet": "parse CSS",
    "ResourceReceivedData": "receive",
    "ResourceFinish": "receive",
    "HitTest": "hit test",
    "Decode Image": "decode image",
    "ImageDecodeTask": "decode image",
}
TRACE_CATEGORIES = [
    "devtools.timeline",
    "blink.user_timing",
    "v8.execute",
    "toplevel",
    "loading",
    "disabled-by-default-devtools.timeline",
]


def main_thread_tasks(trace: dict, min_ms: float = 10.0) -> tuple[float, list[tuple[float, float, Counter, str]]]:
    """(navigation start in trace µs, [(start ms, duration ms, time by kind of work, script)]) for the
    page's renderer main thread: top-level tasks of at least `min_ms`."""
    events = trace.get("traceEvents", trace) if isinstance(trace, dict) else trace
    main_threads = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    starts = [e for e in events if e.get("name") == "navigationStart" and (e["pid"], e["tid"]) in main_threads]
    if not starts:
        return 0.0, []
    origin = min(starts, key=lambda e: e["ts"])
    thread = (origin["pid"], origin["tid"])
    complete = sorted(
        (e for e in events if (e.get("pid"), e.get("tid")) == thread and e.get("ph") == "X" and "dur" in e),
        key=lambda e: (e["ts"], -e["dur"]),
    )
    tasks: list = []
    stack: list = []  # [event, work Counter of its top-level task, script]
    for event in complete:
        while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= event["ts"]:
            stack.pop()
        if not stack:
            record = [event, Counter(), ""]
            tasks.append(record)
            stack.append(record)
            continue
        task = tasks[-1]
        kind = WORK.get(event["name"])
        # Only the outermost recognised work inside a task counts, so nothing is counted twice.
        if kind and not any(WORK.get(frame[0]["name"]) for frame in stack[1:]):
            task[1][kind] += event["dur"] / 1000
            data = event.get("args", {}).get("data", {})
            url = (data.get("url") or data.get("scriptName") or "").rsplit("/", 1)[-1]
            if url and not task[2]:
                task[2] = url[:40]
        stack.append([event, None, ""])
    return origin["ts"], [
        ((t[0]["ts"] - origin["ts"]) / 1000, t[0]["dur"] / 1000, t[1], t[2])
        for t in tasks
        if t[0]["dur"] / 1000 >= min_ms
    ]


def print_trace(trace: dict) -> None:
    _, tasks = main_thread_tasks(trace)
    print("  main-thread tasks ≥ 10 ms (start → duration: work):")
    for start, duration, work, script in tasks:
        parts = ", ".join(f"{name} {value:,.0f}" for name, value in work.most_common() if value >= 1)
        print(f"    {start:7,.0f} ms +{duration:5,.0f} ms: {parts}{'  [' + script + ']' if script else ''}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--markers", type=int, default=2000)
    parser.add_argument("--selector", default=".mz-station-icon")
    parser.add_argument("--loads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--trace", action="store_true", help="also record a Chromium trace: main-thread tasks")
    parser.add_argument("--quiet", action="store_true", help="print only the time to the last marker per load")
    parser.add_argument(
        "--no-service-worker",
        action="store_true",
        help="block the page's service worker (to see what its start-up costs the first load)",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        done_times = []
        for load in range(args.loads):
            page = browser.new_page(service_workers="block" if args.no_service_worker else "allow")
            page.on(
                "console",
                lambda message: message.type in ("error", "warning") and print("  console:", message.text[:200]),
            )
            page.on("pageerror", lambda error: print("  page error:", str(error)[:200]))
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            cdp.send("Profiler.start")
            if args.trace:
                browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
            page.goto(args.url, wait_until="commit", timeout=240_000)
            page.wait_for_function(
                "([selector, total]) => document.querySelectorAll(selector).length >= total",
                arg=[args.selector, args.markers],
                polling="raf",
                timeout=240_000,
            )
            done = page.evaluate("performance.now()")
            done_times.append(done)
            trace = json.loads(browser.stop_tracing()) if args.trace else None
            if args.quiet:
                print(
                    f"load {load + 1}: {args.markers} markers at {done:,.0f} ms, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                cdp.send("Profiler.stop")
                page.close()
                continue
            profile = cdp.send("Profiler.stop")["profile"]
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            resources = page.evaluate(
                "performance.getEntriesByType('resource').map(e => [e.name.split('/').slice(-2).join('/'),"
                " Math.round(e.startTime), Math.round(e.responseEnd)])"
            )
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            print(f"load {load + 1}: {args.markers} markers at {done:,.0f} ms, load {os.getloadavg()[0]:.2f}")
            navigation = json.loads(nav)
            print(
                f"  document: response end {navigation['responseEnd']:,.0f} ms, DOMContentLoaded {navigation['domContentLoadedEventEnd']:,.0f} ms"
            )
            for name, start, end in resources:
                print(f"  {name[:60]:60s} {start:6,d} → {end:6,d} ms")
            marks = page.evaluate("performance.getEntriesByType('mark').map(e => [e.name, Math.round(e.startTime)])")
            for name, start in marks:
                print(f"  mark {name:55s} {start:6,d} ms")
            if trace is not None:
                print_trace(trace)
            for name in (
                "ScriptDuration",
                "RecalcStyleDuration",
                "LayoutDuration",
                "TaskDuration",
                "Nodes",
                "LayoutCount",
                "RecalcStyleCount",
            ):
                value = metrics.get(name)
                if value is not None:
                    print(
                        f"  {name}: {value * 1000:,.0f} ms" if name.endswith("Duration") else f"  {name}: {value:,.0f}"
                    )
            totals = self_times(profile)
            all_micros = sum(totals.values())
            print(f"  JS profile: {all_micros / 1000:,.0f} ms sampled; top self time:")
            for name, micros in totals.most_common(args.top):
                print(f"    {micros / 1000:7,.1f} ms  {name}")
            page.close()
        browser.close()
    if done_times:
        ordered = sorted(done_times)
        print(
            f"navigation → {args.markers}th marker over {len(ordered)} loads: median {ordered[len(ordered) // 2]:,.0f} ms, "
            f"min {ordered[0]:,.0f}, max {ordered[-1]:,.0f}; load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
