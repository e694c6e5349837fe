"""Throw-away PostgreSQL, Redis and Mosquitto for the chaos test: own data directories under a
temporary directory, free ports on 127.0.0.1, started, stopped and restarted by the test. The
machine's shared services are never contacted.

A missing server binary fails the test when MIZUMORI_REQUIRE_SERVICES=1 (CI) and skips it, saying
which, otherwise.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, what: str, log: Path, *, up: bool = True, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_answers(port) == up:
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise AssertionError(f"{what} on port {port} did not {'start' if up else 'stop'} within {seconds:g} s:\n{tail}")


def need_binary(name: str, *candidates: str) -> str:
    """The path of a server binary, or a loud failure (CI) / a skip that says what to install."""
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = (
        f"the chaos test needs {name!r} (Debian: postgresql / redis-server / mosquitto packages) "
        "to run its own throw-away services"
    )
    if os.environ.get("MIZUMORI_REQUIRE_SERVICES") == "1":
        pytest.fail(message + "; MIZUMORI_REQUIRE_SERVICES=1 refuses to skip")
    pytest.skip(message)


def newest_postgres_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return need_binary(name, *reversed(found))


class Throwaway:
    def __init__(self, root: Path, name: str):
        self.dir = root / name
        self.dir.mkdir(mode=0o755)
        self.log = self.dir / f"{name}.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Postgres(Throwaway):
    """A cluster made with initdb; as root, it runs as the `postgres` OS user (initdb refuses root)."""

    def __init__(self, root: Path):
        super().__init__(root, "postgres")
        self.initdb = newest_postgres_binary("initdb")
        self.pg_ctl = os.path.join(os.path.dirname(self.initdb), "pg_ctl")
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = need_binary("runuser", "/usr/sbin/runuser", "/sbin/runuser")
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root, the chaos test runs initdb as the 'postgres' OS user, which does not exist")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = [runuser, "-u", "postgres", "--"]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/mizumori_chaos"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def init(self) -> "Postgres":
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        return self.start()

    def start(self) -> "Postgres":
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE mizumori_chaos")

    def connect(self):
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=mizumori_chaos", autocommit=True)

    def close(self) -> None:
        try:
            self.stop()
        except AssertionError:
            pass


class Redis(Throwaway):
    """Without persistence: a restart starts empty, as after a crash or a flush."""

    def __init__(self, root: Path):
        super().__init__(root, "redis")
        self.binary = need_binary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "Redis":
        log = open(self.log, "a")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, "redis-server", self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # as in a crash: nothing is saved
            self.process.wait(timeout=30)
        wait_for_port(self.port, "redis-server", self.log, up=False)

    close = stop


class Mosquitto(Throwaway):
    """With persistence, as a production broker: a QoS 1 session and its queue survive a restart."""

    def __init__(self, root: Path):
        super().__init__(root, "mosquitto")
        self.binary = need_binary("mosquitto", "/usr/sbin/mosquitto", "/usr/bin/mosquitto")
        self.config = self.dir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
            # Started as root it would switch to the mosquitto user, who cannot write here.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.dir / "stderr.log", "a"))
        wait_for_port(self.port, "mosquitto", self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean stop writes the persistence file
            self.process.wait(timeout=30)
        wait_for_port(self.port, "mosquitto", self.log, up=False)

    close = stop
