"""Turning the driver's send times and the receivers' arrival times into the benchmark's numbers."""
from __future__ import annotations

from collections import Counter, defaultdict


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100), at least 1
    return sorted_values[int(rank) - 1]


def distribution(values: list[float]) -> dict:
    v = sorted(values)
    return {"count": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
            "p999": percentile(v, 99.9), "max": v[-1] if v else None,
            "mean": sum(v) / len(v) if v else None}


def _ms(values: list[float]) -> dict:
    return {k: (v * 1000 if k != "count" and v is not None else v) for k, v in distribution(values).items()}


def deliveries(sent: list, receivers: list[dict], sockets_of: dict[int, list[int]], committed: dict[str, tuple],
               published: dict[str, float] | None = None, rate: float = 1.0) -> dict:
    """Match every committed change to every socket of its user by transactionId.

    ``committed``: transactionId -> (user_id, kind) for every change the database holds
    as done, read after the run, so a change whose HTTP answer never came back (a client
    timeout) is still expected at its sockets. ``sent`` rows (the driver's view):
    [i, kind, user_id, transaction_id, http_status, t_sent, t_answered, tx_status]; they
    give each change its send time. Expected: one ``balance_updated`` per (change, socket
    of its user). Duplicates are arrivals beyond the first for a pair; strays are arrivals
    at another user's socket or of a change that is not committed; ``out_of_order`` counts
    a socket seeing a ``seq`` not greater than the one before. ``published``
    (transactionId -> when the change's message appeared on ``balance:updates``) splits
    each latency in two: the write path (request sent -> published) and the fan-out
    (published -> socket).
    """
    published = published or {}
    sent_at, http_failed, answered = {}, [], []
    for i, kind, user_id, tx_id, status, t0, t1, tx_status in sent:
        if tx_id:
            sent_at[tx_id] = t0
        if status in (200, 201) and tx_status == "success" and tx_id:
            answered.append((t0, t1))
        else:
            http_failed.append({"i": i, "kind": kind, "status": status, "detail": tx_status})
    socket_user = {s: u for u, socks in sockets_of.items() for s in socks}
    first: dict[tuple[str, int], float] = {}
    arrivals = Counter()
    strays = out_of_order = 0
    by_socket = defaultdict(list)
    for rec in receivers:
        for tx_id, sock, t, seq in rec["received"]:
            arrivals[(tx_id, sock)] += 1
            change = committed.get(tx_id)
            if change is None or socket_user.get(sock) != change[0]:
                strays += 1
                continue
            first[(tx_id, sock)] = min(t, first.get((tx_id, sock), t))
            by_socket[sock].append((t, seq))
    for arrivals_of_socket in by_socket.values():
        arrivals_of_socket.sort()
        seqs = [s for _, s in arrivals_of_socket]
        out_of_order += sum(1 for a, b in zip(seqs, seqs[1:]) if b is None or a is None or b <= a)
    expected = sum(len(sockets_of.get(user_id, ())) for user_id, _k in committed.values())
    latencies = [t - sent_at[tx] for (tx, _sock), t in first.items() if tx in sent_at]
    write_path = [published[tx] - sent_at[tx] for tx in committed if tx in published and tx in sent_at]
    fanout = [t - published[tx] for (tx, _sock), t in first.items() if tx in published]
    # first send to last answer, plus one interval: a run exactly on schedule shows the offered rate
    window = (max(t1 for _t0, t1 in answered) - min(t0 for t0, _t1 in answered) + 1 / rate) if answered else 0
    missing = [(tx, s) for tx, (u, _k) in committed.items() for s in sockets_of.get(u, ()) if (tx, s) not in first]
    return {
        "changes": len(committed),
        "changes_answered": len(answered),
        "changes_by_kind": dict(Counter(k for _u, k in committed.values())),
        "http_failed": http_failed[:20],
        "http_failed_count": len(http_failed),
        "expected": expected,
        "delivered": len(first),
        "duplicates": sum(n - 1 for n in arrivals.values() if n > 1),
        "strays": strays,
        "out_of_order": out_of_order,
        "missing_sample": missing[:10],
        "window_seconds": window,
        "latency_ms": _ms(latencies),
        "write_path_ms": _ms(write_path),
        "fanout_ms": _ms(fanout),
        "http_ms": _ms([t1 - t0 for t0, t1 in answered]),
    }


def resources(samples: list[dict], since: float, until: float) -> dict:
    """Mean and peak CPU (% of one core) and peak RSS per process group over the load window."""
    window = [s for s in samples if since <= s["t"] <= until] or samples
    out = {"box_cpu_mean": _mean([s["box_cpu"] for s in window])}
    groups = {k for s in window for k in s if k not in ("t", "box_cpu")}
    for g in sorted(groups):
        cpu = [s[g]["cpu"] for s in window if g in s]
        rss = [s[g]["rss"] for s in window if g in s]
        out[g] = {"cpu_mean": _mean(cpu), "cpu_max": max(cpu) if cpu else None, "rss_max": max(rss) if rss else None}
    return out


def server_gc(before: dict[int, dict], after: dict[int, dict]) -> dict | None:
    """The workers' garbage collections between two ``/metrics`` readings (``gc`` is None on an older server)."""
    pairs = [(before[pid].get("gc"), m.get("gc")) for pid, m in after.items() if pid in before]
    pairs = [(b, e) for b, e in pairs if b and e]
    if not pairs:
        return None
    return {
        "collections": [sum(e["collections"][g] - b["collections"][g] for b, e in pairs) for g in range(3)],
        "pause_total_ms": round(sum(e["pause_total_ms"] - b["pause_total_ms"] for b, e in pairs), 1),
        "pauses_over_10ms": sum(e["pauses_over_10ms"] - b["pauses_over_10ms"] for b, e in pairs),
        "pause_max_ms_since_start": max(e["pause_max_ms"] for _, e in pairs),
    }


def loadgen_gc(outputs: list[dict], since: float, until: float) -> dict:
    """The load generator's collections over 2 ms during the load window (they delay what it times)."""
    pauses = [p for out in outputs for p in out.get("gc_pauses", ()) if since <= p[0] <= until]
    return {"pauses": len(pauses), "max_ms": round(max((p[1] for p in pauses), default=0) * 1000, 1)}


def _gc(result: dict) -> str:
    s, lg = result.get("server_gc"), result.get("loadgen_gc") or {}
    server = "n/a" if not s else (f"{s['collections'][2]} full of {sum(s['collections'])}, "
                                  f"{s['pause_total_ms']} ms in all, {s['pauses_over_10ms']} over 10 ms")
    return f"{server} / {lg.get('pauses', 'n/a')} over 2 ms (max {lg.get('max_ms', 'n/a')} ms)"


def _backends(b: dict | None) -> str:
    if not b:
        return "-"
    return " / ".join(f"{_f(b[k]['mean'], 1)} ({b[k]['max']})" for k in ("waiting_on_lock", "active", "idle_in_transaction"))


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _f(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(result: dict) -> str:
    d, r, m, a = result["deliveries"], result["resources"], result["memory"], result["args"]
    lat = d["latency_ms"]
    server = r.get("server", {})
    mib = 1024 * 1024
    lines = [
        f"**{a['users']} users x {a['sockets_per_user']} sockets = {result['sockets_connected']} sockets, "
        f"{a['rate']} changes/s for {a['duration']} s, {a['workers']} workers ({result['worker_class']}), "
        f"{result.get('receiver', 'python')} socket.io clients"
        + (f", CPU wake-up latency held at {result['cpu_dma_latency_us']} us" if result.get("cpu_dma_latency_us") is not None
           else "") + "**",
        "",
        "| metric | value |",
        "|---|---|",
        f"| changes committed (approvals / payments) | {d['changes']} ({d['changes_by_kind'].get('approve', 0)} / "
        f"{d['changes_by_kind'].get('pay', 0)}); requests failed or timed out (30 s): {d['http_failed_count']} |",
        f"| achieved changes per second (answered) | {_f(result['achieved_tps'], 1)} |",
        f"| delivered / expected | {d['delivered']} / {d['expected']} "
        f"({_f(100 * d['delivered'] / d['expected'] if d['expected'] else None, 3)} %) |",
        f"| duplicates / strays / out of order | {d['duplicates']} / {d['strays']} / {d['out_of_order']} |",
        f"| request-to-socket latency p50 / p90 / p99 / p99.9 / max (ms) | {_f(lat['p50'])} / {_f(lat['p90'])} / "
        f"{_f(lat['p99'])} / {_f(lat['p999'])} / {_f(lat['max'])} |",
        f"| of which request -> message on Redis p50 / p99 (ms) | {_f(d['write_path_ms']['p50'])} / "
        f"{_f(d['write_path_ms']['p99'])} |",
        f"| of which Redis -> socket p50 / p99 (ms) | {_f(d['fanout_ms']['p50'])} / {_f(d['fanout_ms']['p99'])} |",
        f"| HTTP request latency p50 / p99 (ms) | {_f(d['http_ms']['p50'])} / {_f(d['http_ms']['p99'])} |",
        f"| server CPU mean / peak (% of one core, {a['workers']} workers + master) | "
        f"{_f(server.get('cpu_mean'), 0)} / {_f(server.get('cpu_max'), 0)} |",
        f"| server RSS idle / all sockets connected / peak under load (MiB) | {_f(m['idle']['rss'] / mib, 1)} / "
        f"{_f(m['connected']['rss'] / mib, 1)} / {_f((server.get('rss_max') or 0) / mib, 1)} |",
        f"| memory per socket, RSS (USS) delta / sockets (KiB) | {_f(m['per_socket_rss'] / 1024, 1)} "
        f"({_f(m['per_socket_uss'] / 1024, 1)}) |",
        f"| sockets per worker | {', '.join(str(n) for n in result['sockets_per_worker'])} |",
        f"| load generator CPU mean (% of one core) | {_f(r.get('loadgen', {}).get('cpu_mean'), 0)} |",
        f"| PostgreSQL / Redis CPU mean (% of one core) | {_f(r.get('postgres', {}).get('cpu_mean'), 0)} / "
        f"{_f(r.get('redis', {}).get('cpu_mean'), 0)} |",
        f"| PostgreSQL backends waiting on a lock / running / idle in transaction, mean (max) | "
        f"{_backends(result.get('db_backends'))} |",
        f"| garbage collection during the load: server workers / load generator | {_gc(result)} |",
        f"| whole machine CPU mean during the run / before it (% of one core; {result['machine']['cpus']} cores) | "
        f"{_f(r.get('box_cpu_mean'), 0)} / {_f(result.get('background_cpu'), 0)} |",
        f"| server CPU per change answered (ms) / Python speed check before the run (ms, smaller is faster) | "
        f"{_per_change(server.get('cpu_mean'), result.get('achieved_tps'))} / {_f(result.get('python_speed_ms'), 1)} |",
    ]
    return "\n".join(lines) + "\n"


def _per_change(cpu_percent, tps) -> str:
    if not cpu_percent or not tps:
        return "-"
    return f"{cpu_percent * 10 / tps:.1f}"


def profile_summary(path: str, top: int = 25) -> dict:
    """From a py-spy raw (collapsed stacks) file: the share of samples under each frame, and each leaf's own share."""
    inclusive, own, total = Counter(), Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not n.isdigit():
                continue
            n = int(n)
            total += n
            frames = [_frame(fr) for fr in stack.split(";")]
            for fr in set(frames):
                inclusive[fr] += n
            own[frames[-1]] += n
    share = lambda c: [[k, round(100 * v / total, 1)] for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive": share(inclusive), "own": share(own)}


def _frame(raw: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py)``: lines apart, one name per function."""
    name, _, where = raw.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


def profile_markdown(profiles: dict) -> str:
    lines = []
    for pid, p in profiles.items():
        lines += [f"py-spy, worker {pid}: {p['samples']} samples at 100 Hz (busy samples only)", "",
                  "| inclusive % | frame | | own % | leaf frame |", "|---:|---|---|---:|---|"]
        for (fi, pi), (fo, po) in zip(p["inclusive"][:15], p["own"][:15]):
            lines.append(f"| {pi} | `{fi}` | | {po} | `{fo}` |")
        lines.append("")
    return "\n".join(lines)
