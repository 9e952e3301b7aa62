"""Load benchmark for the live balance path: HTTP change -> PostgreSQL -> Redis -> every socket of the user.

    .venv/bin/python bench/run.py --users 100 --sockets-per-user 10 --rate 100 --duration 30 --workers 2

Starts throwaway PostgreSQL and Redis (or uses --database-url / --redis-url, default
$DATABASE_URL / $REDIS_URL), migrates, seeds users and pending top-ups, starts gunicorn
from the Procfile's web line, connects the sockets (websocket only), makes the changes
at a steady rate, prints a markdown table and writes JSON to bench/results/. Exits 1
if any expected event was not delivered exactly once. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import platform
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import report  # noqa: E402
import seed  # noqa: E402
from server import Gunicorn, LockSampler, Sampler, memory  # noqa: E402

from tests.support import databases, services  # noqa: E402

PY = sys.executable


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--sockets-per-user", type=int, default=10)
    p.add_argument("--rate", type=float, default=100, help="changes per second (approvals and payments)")
    p.add_argument("--duration", type=float, default=30, help="seconds of load")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument("--payment-share", type=float, default=0.5, help="share of changes that are payments")
    p.add_argument("--client-procs", type=int, default=1, help="socket receiver processes")
    p.add_argument("--receiver", choices=("node", "python"), default="node",
                   help="socket client: the npm socket.io-client in Node (default) or python-socketio's AsyncClient")
    p.add_argument("--worker-class", help="override the Procfile's --worker-class (e.g. "
                   "geventwebsocket.gunicorn.workers.GeventWebSocketWorker)")
    p.add_argument("--server-venv", help="virtualenv whose gunicorn serves (default: the repo's .venv)")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="PostgreSQL database to use (migrated, not emptied); default: a throwaway server")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="default: a throwaway server")
    p.add_argument("--drain", type=float, default=2.0, help="seconds to wait for late events after the last answer")
    p.add_argument("--cpu-latency-us", type=int, default=None, metavar="US",
                   help="hold the kernel's CPU wake-up latency limit (/dev/cpu_dma_latency, root) at US microseconds "
                        "for the run, as latency-tuned hosts do; 0 keeps idle CPUs polling instead of halting")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of payments at --rate by a user with no sockets before the measured load (not counted)")
    p.add_argument("--label", default="", help="added to the result file names")
    p.add_argument("--profile", action="store_true", help="py-spy record every worker during the load (needs py-spy)")
    p.add_argument("--nice", type=int, default=0, help="run every process the bench starts at this niceness "
                   "(e.g. -5 as root, so other work on a shared box disturbs the numbers less)")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for the machine to be nearly idle (< 40%% of one core busy)")
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    return p.parse_args(argv)


class Run:
    def __init__(self, args):
        self.args = args
        self.cleanup: list = []
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"{self.stamp}-{args.users}x{args.sockets_per_user}-r{args.rate:g}-w{args.workers}"
        self.name = name + (f"-{args.label}" if args.label else "")
        self.dir = os.path.join(args.results, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.groups = {}

    def _nice(self) -> None:
        if self.args.nice:
            os.nice(self.args.nice)

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # -- services ---------------------------------------------------------------------------

    def services(self) -> tuple[str, str]:
        uri, redis_url, groups = start_services(self.args.database_url, self.args.redis_url, self.cleanup, self.args.nice)
        self.groups.update(groups)
        return uri, redis_url

    # -- load generator processes ---------------------------------------------------------------

    def _spawn(self, mode: str, spec: dict, tag: str) -> tuple[subprocess.Popen, str]:
        spec_path = os.path.join(self.dir, f"{tag}.spec.json")
        out_path = os.path.join(self.dir, f"{tag}.out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        if mode == "receive" and self.args.receiver == "node":
            argv = [shutil.which("node") or "node", os.path.join(HERE, "receiver.mjs"), spec_path, out_path]
        else:
            argv = [PY, os.path.join(HERE, "loadgen.py"), mode, spec_path, out_path]
        proc = subprocess.Popen(argv, cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=self._nice,
                                stderr=open(os.path.join(self.dir, f"{tag}.stderr.log"), "w"))
        return proc, out_path

    def connect(self, url: str, users: list[dict], sockets_per_user: int, procs: int, tag: str):
        """Start receiver processes holding ``sockets_per_user`` sockets for each user; wait until all are READY."""
        sockets_of, slices, n = {}, [[] for _ in range(procs)], 0
        for k, u in enumerate(users):
            socks = list(range(n, n + sockets_per_user))
            n += sockets_per_user
            sockets_of[u["user_id"]] = socks
            slices[k % procs].append({"user_id": u["user_id"], "token": u["token"], "sockets": socks})
        receivers = [self._spawn("receive", {"url": url, "users": s}, f"{tag}{i}") for i, s in enumerate(slices) if s]
        connected = failed = 0
        for proc, _ in receivers:
            line = proc.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"a receiver did not get ready; see {self.dir}/{tag}*.stderr.log")
            connected, failed = connected + int(line[1]), failed + int(line[2])
        return receivers, sockets_of, connected, failed

    def stop_receivers(self, receivers) -> list[dict]:
        for proc, _ in receivers:
            proc.stdin.write("STOP\n")
            proc.stdin.flush()
        out = []
        for proc, path in receivers:
            proc.wait(60)
            with open(path) as f:
                out.append(json.load(f))
        return out

    # -- the run ------------------------------------------------------------------------------

    def execute(self) -> dict:
        a = self.args
        t_start = time.time()
        background = box_cpu(2.0)
        while a.wait_quiet and background > 40 and time.time() - t_start < a.wait_quiet:
            self.log(f"machine busy ({background:.0f}% of one core); waiting for it to quieten")
            background = box_cpu(5.0)
        self.log(f"machine CPU busy before the run: {background:.0f}% of one core (other work shares the box)")
        speed = python_speed_ms()
        self.log(f"Python speed check: {speed:.1f} ms (smaller is faster)")
        if a.cpu_latency_us is not None:
            self.cleanup.append(hold_cpu_latency(a.cpu_latency_us))
            self.log(f"holding /dev/cpu_dma_latency at {a.cpu_latency_us} us for the run")
        uri, redis_url = self.services()
        secret = secrets.token_urlsafe(32)
        self.log(f"seeding {a.users} users and their pending top-ups")
        stage = seed.prepare(uri, secret, a.users, seed.topups_needed(a.users, a.rate, a.duration, a.payment_share),
                             warmup_topups=int(a.rate * a.warmup / 2) + 1)
        plan = seed.plan(stage, a.rate, a.duration, a.payment_share)

        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DATABASE_URL=uri.replace("postgresql+psycopg://", "postgresql://"), REDIS_URL=redis_url,
                   SECRET_KEY=secret, JWT_SECRET=secret, BALANCE_ENV="production",
                   WORKER_CONNECTIONS=os.environ.get("WORKER_CONNECTIONS", "10000"))  # the Procfile's default
        gunicorn = Gunicorn(env, a.workers, services.free_port(), os.path.join(self.dir, "gunicorn.log"),
                            a.worker_class, a.server_venv, preexec=self._nice)
        self.log(f"starting: {gunicorn.cmd}")
        gunicorn.start()
        self.cleanup.append(gunicorn.stop)
        self.groups["server"] = gunicorn.pids

        # warm every worker's socket path once, so its one-time imports are not counted per socket
        warm, _, _, _ = self.connect(gunicorn.url, stage.users[:1], 4 * a.workers, 1, "warmup")
        self.stop_receivers(warm)
        time.sleep(1.0)
        idle = memory(gunicorn.pids())

        self.log(f"connecting {a.users * a.sockets_per_user} sockets")
        receivers, sockets_of, connected, failed = self.connect(gunicorn.url, stage.users, a.sockets_per_user,
                                                                a.client_procs, "receiver")
        time.sleep(1.0)
        loaded = memory(gunicorn.pids())
        per_worker = gunicorn.worker_metrics()
        sockets_per_worker = sorted((m["sockets"] for m in per_worker.values()), reverse=True)
        self.log(f"{connected} sockets connected ({failed} failed), per worker: {sockets_per_worker}")

        driver, driver_out = self._spawn("drive", {"url": gunicorn.url, "rate": a.rate, "plan": plan,
                                                   "admin_token": stage.admin_token, "redis_url": redis_url,
                                                   "warmup": {"token": stage.warmup_token, "seconds": a.warmup,
                                                              "topups": stage.warmup_topups}},
                                       "driver")
        receiver_pids = [p.pid for p, _ in receivers]
        self.groups["loadgen"] = lambda: [*receiver_pids, driver.pid]
        for pid in gunicorn.worker_pids():
            self.groups[f"worker:{pid}"] = (lambda pid=pid: [pid])
        sampler = Sampler(self.groups)
        sampler.start()
        locks = LockSampler(uri.replace("postgresql+psycopg://", "postgresql://"))
        locks.start()
        profilers = self.profile(gunicorn.worker_pids(), len(plan) / a.rate) if a.profile else []
        self.log(f"driving {len(plan)} changes at {a.rate:g}/s")
        driver.wait()
        self.settle(uri, [u["user_id"] for u in stage.users])
        time.sleep(a.drain)
        for proc in profilers:
            proc.wait(30)
        samples = sampler.stop()
        db_backends = locks.stop()
        with open(driver_out) as f:
            drive = json.load(f)
        received = self.stop_receivers(receivers)
        end_metrics = gunicorn.worker_metrics()

        gunicorn_pids = gunicorn.worker_pids()
        committed = seed.committed_changes(uri, [u["user_id"] for u in stage.users])
        d = report.deliveries(drive["sent"], received, sockets_of, committed, drive["published"], a.rate)
        window = d["window_seconds"]
        sockets = max(connected, 1)
        return {
            "name": self.name,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "args": vars(a) | {"database_url": bool(a.database_url), "redis_url": bool(a.redis_url)},
            "command": " ".join([os.path.relpath(PY, ROOT), "bench/run.py", *sys.argv[1:]]),
            "gunicorn": gunicorn.cmd,
            "worker_class": a.worker_class or "gevent",
            "receiver": a.receiver,
            "cpu_dma_latency_us": a.cpu_latency_us,
            "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                        "platform": platform.platform(), "python": platform.python_version(),
                        "cpu_model": _cpu_model()},
            "sockets_connected": connected,
            "sockets_failed": failed,
            "sockets_per_worker": sockets_per_worker,
            "disconnects": sum(len(r["disconnects"]) for r in received),
            "connect_seconds": max(r["connect_seconds"] for r in received),
            "memory": {"idle": idle, "connected": loaded,
                       "per_socket_rss": (loaded["rss"] - idle["rss"]) / sockets,
                       "per_socket_uss": (loaded["uss"] - idle["uss"]) / sockets},
            "achieved_tps": d["changes_answered"] / window if window > 0 else None,
            "driver_schedule_lag_ms": {"p99": drive["schedule_lag_p99"] * 1000, "max": drive["schedule_lag_max"] * 1000},
            "deliveries": d,
            "other_events": _sum_dicts(r["other"] for r in received),
            "resources": report.resources(samples, drive["start"], drive["start"] + window),
            "background_cpu": background,
            "python_speed_ms": speed,
            "db_backends": db_backends,
            "worker_metrics_end": list(end_metrics.values()),
            "server_gc": report.server_gc(per_worker, end_metrics),
            "loadgen_gc": report.loadgen_gc([*received, drive], drive["start"], drive["start"] + window),
            "setup_seconds": round(time.time() - t_start, 1),
            "profiles": self.profile_summaries(gunicorn_pids) if a.profile else None,
        }

    def settle(self, uri: str, user_ids: list[int], limit: float = 60) -> None:
        """Wait until the server stops committing: requests the driver gave up on (timeouts) may still finish."""
        last, deadline = -1, time.monotonic() + limit
        while time.monotonic() < deadline:
            n = len(seed.committed_changes(uri, user_ids))
            if n == last:
                return
            last = n
            time.sleep(1.0)

    def profile(self, pids: list[int], seconds: float) -> list[subprocess.Popen]:
        """py-spy each worker for the load's duration (sampling, so it costs the worker little)."""
        pyspy = os.path.join(os.path.dirname(PY), "py-spy")
        return [subprocess.Popen([pyspy, "record", "-p", str(pid), "-d", str(int(seconds) + 1), "-r", "100",
                                  "-f", "raw", "-o", os.path.join(self.dir, f"profile-{pid}.txt"), "--nonblocking"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]

    def profile_summaries(self, pids: list[int]) -> dict:
        out = {}
        for pid in pids:
            path = os.path.join(self.dir, f"profile-{pid}.txt")
            if os.path.exists(path):
                out[str(pid)] = report.profile_summary(path)
        return out

    def close(self) -> None:
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                self.log(f"cleanup: {exc!r}")


def start_services(database_url: str | None, redis_url: str | None, cleanup: list, nice: int = 0):
    """The given PostgreSQL database (migrated) and Redis, or throwaway servers; their stops go on ``cleanup``.

    Returns the SQLAlchemy database URI, the Redis URL and, for the CPU sampler, the
    process groups of the servers started here.
    """
    groups = {}
    if database_url:
        uri = databases.sqlalchemy_url(database_url)
        databases.migrate(uri)
    else:
        pg = services.PostgresServer().start()
        cleanup.append(pg.close)
        postmaster = _postmaster(pg)
        renice(postmaster, nice)
        uri = databases.create_postgres_database(pg.url, "balance_bench")
        groups["postgres"] = lambda: [postmaster]
    if not redis_url:
        rs = services.RedisServer().start()
        cleanup.append(rs.close)
        redis_url = rs.url
        renice(rs.proc.pid, nice)
        groups["redis"] = lambda: [rs.proc.pid]
    return uri, redis_url, groups


def _postmaster(pg) -> int:
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        return int(f.readline())


def renice(pid: int, niceness: int) -> None:
    if niceness:
        psutil.Process(pid).nice(niceness)


def hold_cpu_latency(microseconds: int):
    """Ask the kernel (PM QoS) to keep every CPU able to wake within ``microseconds``; returns the release.

    The request lasts while the file stays open. On this VM (cpuidle driver haltpoll,
    guest_halt_poll_ns 0) an idle vCPU halts at once, and every hop of a change (driver ->
    worker -> PostgreSQL -> worker -> Redis -> worker -> client) may first have to wake one.
    """
    fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    os.write(fd, struct.pack("i", microseconds))
    return lambda: os.close(fd)


def box_cpu(seconds: float) -> float:
    """How busy the machine is (% of one core) over ``seconds``: other work skews a benchmark on a shared box."""
    a = psutil.cpu_times()
    time.sleep(seconds)
    b = psutil.cpu_times()
    busy = lambda t: sum(t) - t.idle - getattr(t, "iowait", 0)  # noqa: E731
    return 100 * (busy(b) - busy(a)) / seconds


def python_speed_ms(rounds: int = 5) -> float:
    """Milliseconds one core takes for a fixed piece of pure Python (best of ``rounds``): this VM's speed varies by day.

    The same code's server CPU per change has differed threefold between days on the
    same kind of machine; this figure, taken just before the run, says which kind of
    day a result comes from.
    """
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        acc: dict[int, int] = {}
        for i in range(300_000):
            acc[i & 1023] = acc.get(i & 1023, 0) + i
        json.dumps(acc)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def _sum_dicts(dicts) -> dict:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    run = Run(args)
    try:
        result = run.execute()
    finally:
        run.close()
    table = report.markdown(result)
    if result["profiles"]:
        table += "\n" + report.profile_markdown(result["profiles"])
    with open(os.path.join(run.dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(run.dir, "result.md"), "w") as f:
        f.write(f"`{result['command']}`  \n{result['date']}\n\n{table}")
    print(table)
    print(f"results: {os.path.relpath(run.dir, ROOT)}/result.json", file=sys.stderr)
    d = result["deliveries"]
    ok = (d["delivered"] == d["expected"] and d["duplicates"] == 0 and d["strays"] == 0 and d["out_of_order"] == 0
          and d["http_failed_count"] == 0 and result["sockets_failed"] == 0 and d["expected"] > 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
