"""The floor under the load benchmark: what one request costs when it is alone on the server.

    .venv/bin/python bench/floor.py --requests 1000

One gunicorn worker started from the Procfile's web line (PostgreSQL and Redis as in
``bench/run.py``), no sockets, and one request at a time with a pause between them, for
each kind of request the benchmark sends and two for scale: ``GET /healthz`` (gunicorn,
Flask and the extensions with no work of ours), ``GET /balance`` (plus the token and
one read), a payment and a top-up approval (the two changes of ``bench/run.py``). For
each: the worker's CPU per request and the latency seen by the client. Nothing queues
here, so a change's request-to-socket latency under load cannot be lower than its CPU
on this line: this is how far a box is from a latency goal before any load is put on it.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import sys
import time
from datetime import datetime, timezone

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import report  # noqa: E402
import seed  # noqa: E402
from run import python_speed_ms, start_services  # noqa: E402
from server import Gunicorn  # noqa: E402

from tests.support import services  # noqa: E402

WARM_UP = 50  # requests of each kind before measuring: connections opened, statements and caches warm


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1000, help="measured requests of each kind")
    p.add_argument("--pause", type=float, default=5.0, help="milliseconds between one answer and the next request")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="PostgreSQL database to use (migrated, not emptied); default: a throwaway server")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="default: a throwaway server")
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    return p.parse_args(argv)


def kinds(stage: seed.Stage):
    """(name, method, path-or-callable, headers, body) for each kind of request, in the order they are measured."""
    user = stage.users[0]
    as_user = {"Authorization": f"Bearer {user['token']}"}
    as_admin = {"Authorization": f"Bearer {stage.admin_token}"}
    topups = iter(stage.pending[user["user_id"]])
    return [
        ("GET /healthz", "GET", lambda: "/healthz", {}, None),
        ("GET /balance", "GET", lambda: "/balance", as_user, None),
        ("payment", "POST", lambda: "/transactions/payment", as_user,
         {"amount": seed.PAYMENT_AMOUNT, "description": "floor"}),
        ("top-up approval", "PATCH", lambda: f"/transactions/topup/{next(topups)}/process", as_admin,
         {"status": "success", "admin_notes": "floor"}),
    ]


def measure(conn: http.client.HTTPConnection, worker: psutil.Process, kind, count: int, pause: float) -> dict:
    """``count`` requests of one kind on one kept-alive connection (the standard library's client: the least
    client-side work between the two clock readings)."""
    name, method, path, headers, body = kind
    headers = dict(headers, **({"Content-Type": "application/json"} if body is not None else {}))
    payload = json.dumps(body) if body is not None else None
    for i in range(WARM_UP + count):
        if i == WARM_UP:
            cpu0, latencies = worker.cpu_times(), []
        t0 = time.perf_counter()
        conn.request(method, path(), body=payload, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status >= 300:
            raise RuntimeError(f"{name}: {resp.status} {answer[:300]!r}")
        if i >= WARM_UP:
            latencies.append(elapsed * 1000)
        time.sleep(pause / 1000)
    cpu1 = worker.cpu_times()
    cpu_ms = 1000 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / count
    return {"kind": name, "requests": count, "worker_cpu_ms": round(cpu_ms, 3),
            "latency_ms": report.distribution(latencies)}


def execute(a) -> dict:
    cleanup: list = []
    try:
        speed = python_speed_ms()
        uri, redis_url, _ = start_services(a.database_url, a.redis_url, cleanup)
        secret = secrets.token_urlsafe(32)
        stage = seed.prepare(uri, secret, 1, WARM_UP + a.requests + 1)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DATABASE_URL=uri.replace("postgresql+psycopg://", "postgresql://"), REDIS_URL=redis_url,
                   SECRET_KEY=secret, JWT_SECRET=secret, BALANCE_ENV="production")
        os.makedirs(a.results, exist_ok=True)
        gunicorn = Gunicorn(env, 1, services.free_port(), os.path.join(a.results, "floor-gunicorn.log")).start()
        cleanup.append(gunicorn.stop)
        (worker,) = [psutil.Process(pid) for pid in gunicorn.worker_pids()]
        conn = http.client.HTTPConnection("127.0.0.1", gunicorn.port)
        try:
            rows = [measure(conn, worker, kind, a.requests, a.pause) for kind in kinds(stage)]
        finally:
            conn.close()
        return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                "python_speed_ms": round(speed, 1), "pause_ms": a.pause, "server": gunicorn.cmd, "rows": rows}
    finally:
        for fn in reversed(cleanup):
            fn()


def markdown(result: dict) -> str:
    lines = [f"**One request at a time, {result['pause_ms']:g} ms apart, one gunicorn gevent worker "
             f"(Python speed check {result['python_speed_ms']} ms)**",
             "", "| request | worker CPU per request (ms) | latency p50 / p90 / p99 (ms) |", "|---|---:|---|"]
    for r in result["rows"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['kind']} | {r['worker_cpu_ms']:.2f} | {lat['p50']:.2f} / {lat['p90']:.2f} / {lat['p99']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = parse_args(argv)
    result = execute(a)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(a.results, f"{stamp}-floor.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(markdown(result))
    print(f"results: {os.path.relpath(path, ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
