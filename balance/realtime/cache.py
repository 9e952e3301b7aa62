"""The balance cache: Redis when configured (shared by every worker), else this process's memory.

A write never replaces a newer ``seq`` with an older one (a Lua script makes the
compare-and-set atomic), so a slow reader that fetched an old row from the database
cannot push the cache backwards. Redis errors make the cache miss, never the request fail;
after one that timed out, the cache leaves Redis alone for a moment (``breaker``), so a frozen
Redis costs the request path one timeout a second, not one per call.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime

import redis

from ..services.snapshots import Snapshot
from .breaker import RedisBreaker

log = logging.getLogger(__name__)

_PUT_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['seq']) and tonumber(decoded['seq']) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
"""


def _encode(s: Snapshot) -> str:
    return json.dumps({"balance": s.balance, "seq": s.seq, "currency": s.currency,
                       "updated_at": s.updated_at.isoformat() if s.updated_at else None})


def _decode(user_id: int, raw: str | bytes) -> Snapshot:
    d = json.loads(raw)
    at = datetime.fromisoformat(d["updated_at"]) if d.get("updated_at") else None
    return Snapshot(user_id, int(d["balance"]), int(d["seq"]), d["currency"], at)


class CacheStats:
    def __init__(self):
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.breaker: RedisBreaker | None = None

    def as_dict(self) -> dict:
        total = self.hits + self.misses
        out = {"hits": self.hits, "misses": self.misses, "errors": self.errors,
               "hit_ratio": round(self.hits / total, 4) if total else None}
        if self.breaker is not None:  # calls to Redis skipped while it was failing, and how often that began
            out["redis_skipped"], out["redis_breaks"] = self.breaker.skipped, self.breaker.opened
        return out


class RedisBalanceCache:
    def __init__(self, client: redis.Redis, ttl: int, breaker: RedisBreaker | None = None):
        self.client = client
        self.ttl = ttl
        self.breaker = breaker or RedisBreaker()  # shared with the bus's publish: one Redis, one verdict
        self.stats = CacheStats()
        self.stats.breaker = self.breaker
        self.dirty: set[int] = set()
        self._put = client.register_script(_PUT_IF_NEWER)

    @staticmethod
    def key(user_id: int) -> str:
        return f"balance:cache:{user_id}"

    def get(self, user_id: int) -> Snapshot | None:
        if not self.breaker.allows():
            self.stats.misses += 1
            return None
        try:
            with self.breaker.attempt():
                raw = self.client.get(self.key(user_id))
        except redis.RedisError as exc:
            self.stats.errors += 1
            log.warning("balance cache read failed (%s); using the database", exc)
            raw = None
        if raw is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return _decode(user_id, raw)

    def put(self, snapshot: Snapshot) -> None:
        if not self.breaker.allows():
            self.failed(snapshot)
            return
        try:
            with self.breaker.attempt():
                self._put(keys=[self.key(snapshot.user_id)], args=[_encode(snapshot), snapshot.seq, self.ttl])
        except redis.RedisError as exc:
            self.failed(snapshot)
            log.warning("balance cache write failed (%s); will repair user %s", exc, snapshot.user_id)

    def clear(self) -> int:
        """Delete every cached balance (``flask cache clear``); return how many there were."""
        gone, batch = 0, []
        for key in self.client.scan_iter(match=self.key("*"), count=1000):
            batch.append(key)
            if len(batch) == 1000:
                gone += self.client.delete(*batch)
                batch = []
        if batch:
            gone += self.client.delete(*batch)
        self.dirty.clear()
        return gone

    def put_in(self, pipe, snapshot: Snapshot) -> None:
        """Queue the same compare-and-set on a pipeline (``EVAL``: a pipeline's ``EVALSHA`` would first ask
        ``SCRIPT EXISTS``, one more round trip); the caller reports a failed pipeline with ``failed``."""
        pipe.eval(_PUT_IF_NEWER, 1, self.key(snapshot.user_id), _encode(snapshot), snapshot.seq, self.ttl)

    def failed(self, snapshot: Snapshot) -> None:
        self.stats.errors += 1
        self.dirty.add(snapshot.user_id)

    def repair(self, load) -> None:
        """Rewrite entries whose update failed (Redis was down), from ``load(user_id)``: the database."""
        if not self.dirty or not self.breaker.allows():
            return
        for user_id in list(self.dirty):
            self.dirty.discard(user_id)
            try:
                with self.breaker.attempt():
                    self.client.delete(self.key(user_id))
            except redis.RedisError:
                self.dirty.add(user_id)
                return
            self.put(load(user_id))


class LocalBalanceCache:
    """Same contract in one process's memory (the embedded default, without Redis)."""

    def __init__(self):
        self.stats = CacheStats()
        self._data: dict[int, Snapshot] = {}
        self._lock = threading.Lock()

    def get(self, user_id: int) -> Snapshot | None:
        hit = self._data.get(user_id)
        if hit is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return hit

    def repair(self, load) -> None:
        """Nothing can fail in memory."""

    def put(self, snapshot: Snapshot) -> None:
        with self._lock:
            current = self._data.get(snapshot.user_id)
            if current is None or current.seq < snapshot.seq:
                self._data[snapshot.user_id] = snapshot
