"""The server under test: gunicorn started from the Procfile's ``web`` line, and a sampler of its CPU and memory."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import psutil
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def procfile_web_line() -> str:
    with open(os.path.join(ROOT, "Procfile")) as f:
        for line in f:
            if line.startswith("web:"):
                return line[len("web:"):].strip()
    raise RuntimeError("the Procfile has no web: line")


def command(worker_class: str | None) -> str:
    """The Procfile's command, with another ``--worker-class`` if asked (for the gevent-websocket comparison)."""
    line = procfile_web_line()
    if worker_class:
        line, n = re.subn(r"--worker-class\s+\S+", f"--worker-class {worker_class}", line)
        if n != 1:
            raise RuntimeError("could not find --worker-class in the Procfile's web line")
    return line


class Gunicorn:
    def __init__(self, env: dict, workers: int, port: int, log_path: str, worker_class: str | None = None,
                 server_venv: str | None = None, preexec=None):
        self.env = dict(env, WEB_CONCURRENCY=str(workers), PORT=str(port), PYTHONUNBUFFERED="1")
        bin_dir = os.path.join(server_venv or os.path.join(ROOT, ".venv"), "bin")
        self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
        self.env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
        self.workers = workers
        self.port = port
        self.log_path = log_path
        self.cmd = command(worker_class)
        self.proc: subprocess.Popen | None = None
        self.preexec = preexec

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Gunicorn:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["bash", "-c", "exec " + self.cmd], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=self.preexec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log_path}")
            if len(self.worker_pids()) == self.workers and self._ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready after {timeout}s; see {self.log_path}")

    def _ready(self) -> bool:
        """Every worker booted and subscribed (each logs it once), and the port answers."""
        with open(self.log_path) as f:
            booted = f.read().count("BalanceGateway initialized and subscribed")
        if booted < self.workers:
            return False
        try:
            return requests.get(self.url + "/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids()]

    def worker_metrics(self, tries: int = 40) -> dict[int, dict]:
        """``GET /metrics`` on fresh connections until every worker has answered once."""
        seen: dict[int, dict] = {}
        for _ in range(tries):
            try:
                body = requests.get(self.url + "/metrics", timeout=2, headers={"Connection": "close"}).json()
                seen[body["pid"]] = body
            except (requests.RequestException, ValueError, KeyError):
                pass
            if len(seen) >= self.workers:
                break
        return seen

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()


def memory(pids: list[int]) -> dict:
    """RSS and USS (memory only this process holds) summed over ``pids``, in bytes."""
    rss = uss = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
            rss, uss = rss + info.rss, uss + info.uss
        except psutil.NoSuchProcess:
            pass
    return {"rss": rss, "uss": uss}


class Sampler(threading.Thread):
    """Every ``interval`` seconds: CPU (% of one core) and RSS of each group of processes, and of the whole box."""

    def __init__(self, groups: dict[str, callable], interval: float = 0.5):
        super().__init__(daemon=True)
        self.groups = groups  # name -> function returning the group's pids (children are included)
        self.interval = interval
        self.samples: list[dict] = []
        self._halt = threading.Event()

    @staticmethod
    def _cpu(pids: list[int]) -> tuple[float, int]:
        cpu = rss = 0
        for pid in pids:
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return cpu, rss

    def _expand(self, pids: list[int]) -> list[int]:
        out = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                out.append(pid)
                out.extend(c.pid for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return sorted(set(out))

    def run(self) -> None:
        last_t, last = time.monotonic(), {}
        last_box = psutil.cpu_times()
        for name, pids in self.groups.items():
            last[name] = self._cpu(self._expand(pids()))[0]
        while not self._halt.wait(self.interval):
            now = time.monotonic()
            dt = now - last_t
            box = psutil.cpu_times()
            busy = (sum(box) - box.idle - getattr(box, "iowait", 0)) - (sum(last_box) - last_box.idle
                                                                       - getattr(last_box, "iowait", 0))
            sample = {"t": now, "box_cpu": 100 * busy / dt}
            for name, pids in self.groups.items():
                cpu, rss = self._cpu(self._expand(pids()))
                sample[name] = {"cpu": 100 * (cpu - last[name]) / dt, "rss": rss}
                last[name] = cpu
            self.samples.append(sample)
            last_t, last_box = now, box

    def stop(self) -> list[dict]:
        self._halt.set()
        self.join(5)
        return self.samples


class LockSampler(threading.Thread):
    """Every ``interval`` seconds: how many of the database's backends are running, waiting on a lock, or idle in a
    transaction (waiting for the app). A queue on a lock means changes serialise on a row, whatever the CPU does."""

    QUERY = ("SELECT count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock'), "
             "count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'), "
             "count(*) FILTER (WHERE state = 'idle in transaction') "
             "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def __init__(self, url: str, interval: float = 0.5):
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.samples: list[tuple] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._halt.wait(self.interval):
                    self.samples.append((time.monotonic(), *conn.execute(self.QUERY).fetchone()))
        except Exception:  # noqa: BLE001 - a missing sample must not stop the benchmark
            pass

    def stop(self) -> dict:
        self._halt.set()
        self.join(5)
        if not self.samples:
            return {}
        cols = list(zip(*self.samples))[1:]
        return {name: {"mean": sum(c) / len(c), "max": max(c)}
                for name, c in zip(("waiting_on_lock", "active", "idle_in_transaction"), cols)}
