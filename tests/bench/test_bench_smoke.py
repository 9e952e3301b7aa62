"""The load benchmark's harness, run at a tiny scale so it cannot rot: every event reaches every socket once.

The numbers of a run this small mean nothing; the benchmark itself is ``bench/run.py``
(see bench/README.md) and is not part of the suite.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.support import databases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def own_redis_database(redis_url: str) -> str:
    """A Redis database of the benchmark's own, emptied: the balance cache of other tests' users (same ids, other
    seqs) must not leak into a run, nor a run's into theirs."""
    url = urlunsplit(urlsplit(redis_url)._replace(path="/9"))  # never the given database, whatever it is
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.mark.multiprocess
def test_tiny_benchmark_run_delivers_every_event_once_to_every_socket(postgres_server_url, redis_url, tmp_path,
                                                                      request):
    name = f"balance_bench_smoke_{os.getpid()}"
    database = databases.create_postgres_database(postgres_server_url, name)
    request.addfinalizer(lambda: databases.drop_postgres_database(postgres_server_url, name))
    bench_redis = own_redis_database(redis_url)
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--users", "2", "--sockets-per-user", "2",
         "--rate", "5", "--duration", "4", "--drain", "1", "--workers", "2",
         "--database-url", database, "--redis-url", bench_redis, "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    (path,) = glob.glob(str(tmp_path / "*" / "result.json"))
    with open(path) as f:
        result = json.load(f)
    d = result["deliveries"]
    assert result["sockets_connected"] == 4
    assert d["changes"] == 20 and d["http_failed_count"] == 0
    assert d["expected"] == 20 * 2 and d["delivered"] == d["expected"]
    assert d["duplicates"] == 0 and d["strays"] == 0 and d["out_of_order"] == 0
    assert d["latency_ms"]["p50"] is not None
    assert "| delivered / expected | 40 / 40 (100.000 %) |" in run.stdout


@pytest.mark.multiprocess
def test_the_floor_measures_every_kind_of_request_alone(postgres_server_url, redis_url, tmp_path, request):
    name = f"balance_floor_smoke_{os.getpid()}"
    database = databases.create_postgres_database(postgres_server_url, name)
    request.addfinalizer(lambda: databases.drop_postgres_database(postgres_server_url, name))
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "floor.py"), "--requests", "5", "--pause", "0",
         "--database-url", database, "--redis-url", own_redis_database(redis_url), "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    (path,) = glob.glob(str(tmp_path / "*-floor.json"))
    with open(path) as f:
        rows = json.load(f)["rows"]
    assert [r["kind"] for r in rows] == ["GET /healthz", "GET /balance", "payment", "top-up approval"]
    assert all(r["requests"] == 5 and r["latency_ms"]["count"] == 5 and r["worker_cpu_ms"] >= 0 for r in rows)
    assert "| payment |" in run.stdout
