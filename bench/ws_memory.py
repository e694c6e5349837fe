"""What an ASGI process holds per live websocket client: one uvicorn process (as `bin/serve` starts it,
one worker) on the database `bench/e2e.py` seeded, RSS and a tracemalloc snapshot with 0 clients and
with N anonymous clients subscribed to river (with their snapshot, as phase c connects them), and the
allocation sites that grew most between the two.

    .venv/bin/python bench/ws_memory.py --clients 1000            # RSS only (no tracing overhead)
    .venv/bin/python bench/ws_memory.py --clients 1000 --trace    # and the tracemalloc diff

Run `bench/e2e.py --only c` first (it seeds BENCH_DATABASE_URL); this drops nothing. Prints figures
with the 1-minute load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402 - the bench's helpers: service environment, clients, RSS, load

ROOT = e2e.ROOT

# Runs inside the server process: uvicorn in this process (no supervisor), a tracemalloc snapshot
# written to MZ_TRACE_DUMP.<n> on the n-th SIGUSR1 (from 0).
SERVER = """
import os, signal, sys, tracemalloc
import uvicorn
dumps = 0
def dump(signum, frame):
    global dumps
    path = f"{os.environ['MZ_TRACE_DUMP']}.{dumps}"
    dumps += 1
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(path)
    open(path + ".done", "w").close()
signal.signal(signal.SIGUSR1, dump)
sys.path.insert(0, os.getcwd())
uvicorn.run("config.asgi:application", host="127.0.0.1", port=int(sys.argv[1]), proxy_headers=True,
            lifespan="on", ws="config.websocket:WebSocketProtocol", log_level="warning")
"""


def snapshot_of(server: subprocess.Popen, path: str) -> tracemalloc.Snapshot | None:
    done = Path(path + ".done")
    done.unlink(missing_ok=True)
    server.send_signal(signal.SIGUSR1)
    for _ in range(3000):
        if done.exists():
            break
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(path) if Path(path).exists() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="processes holding the clients")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 0)) or None)
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the server (slower, more memory)")
    parser.add_argument("--no-snapshot", dest="snapshot", action="store_false")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    port = args.port or e2e.free_port()
    env = e2e.service_env()
    work = tempfile.mkdtemp(prefix="ws-memory-")
    env["MZ_TRACE_DUMP"] = os.path.join(work, "trace")
    command = [str(ROOT / ".venv" / "bin" / "python")]
    if args.trace:
        command += ["-X", "tracemalloc=1"]
    server = subprocess.Popen([*command, "-c", SERVER, str(port)], cwd=ROOT, env=env)
    ctx = multiprocessing.get_context("spawn")
    groups = []  # (procs, command queues) of every client process started
    try:
        http_ = e2e.Http(port)
        for _ in range(600):
            try:
                if http_.request("GET", "/health/")[0] in (200, 503):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        http_.close()
        # One client first, and it stays: what the first connection loads once (the audience's
        # features, code paths) is not counted per connection.
        groups.append(run_clients(ctx, port, 1, 1, args.snapshot)[:2])
        time.sleep(2)
        idle_rss = e2e.rss_mb(server.pid)
        before = snapshot_of(server, env["MZ_TRACE_DUMP"] + ".0") if args.trace else None
        print(f"1 client: RSS {idle_rss:.0f} MB (load {e2e.load1():.2f})", flush=True)
        began = time.monotonic()
        procs, commands, replies = run_clients(ctx, port, args.clients, args.processes, args.snapshot)
        groups.append((procs, commands))
        connected = sum(reply["connected"] for reply in replies)
        time.sleep(2)
        rss = e2e.rss_mb(server.pid)
        print(f"{connected} more clients connected in {time.monotonic() - began:.1f} s "
              f"({sum(reply['failed'] for reply in replies)} failed): RSS {rss:.0f} MB, "
              f"{(rss - idle_rss) * 1024 / max(connected, 1):.0f} KB per client (load {e2e.load1():.2f})", flush=True)
        if args.trace:
            after = snapshot_of(server, env["MZ_TRACE_DUMP"] + ".1")
            print(f"traced: {sum(s.size for s in before.statistics('filename')) / 2**20:.0f} MB → "
                  f"{sum(s.size for s in after.statistics('filename')) / 2**20:.0f} MB", flush=True)
            for stat in after.compare_to(before, "traceback")[: args.top]:
                print(f"{stat.size_diff / 2**20:8.1f} MB {stat.count_diff:+8d} blocks  "
                      f"{' <- '.join(str(frame) for frame in list(stat.traceback)[-1:-6:-1])}")
    finally:
        for procs, commands in groups:
            for queue_pair in commands:
                queue_pair[0].put("close")
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run_clients(ctx, port, count, processes, snapshot):
    """Processes holding `count` websocket clients (bench/e2e.py's), once all have connected."""
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    commands = [(ctx.Queue(), ctx.Queue()) for _ in shares]
    procs = [ctx.Process(target=e2e.ws_clients_main, args=(port, n, snapshot, c, r), daemon=True)
             for n, (c, r) in zip(shares, commands)]
    for proc in procs:
        proc.start()
    return procs, commands, [r.get(timeout=900) for _, r in commands]


if __name__ == "__main__":
    sys.exit(main())
