"""The worker's garbage-collector watch: what /metrics reports about collections and their pauses."""
from __future__ import annotations

import subprocess
import sys
import time

from balance.runtime import GcWatch


def test_a_collection_is_counted_under_its_generation_with_its_pause():
    watch = GcWatch()
    watch("start", {"generation": 2})
    time.sleep(0.012)
    watch("stop", {"generation": 2, "collected": 0, "uncollectable": 0})

    stats = watch.as_dict()
    assert stats["collections"] == [0, 0, 1]
    assert stats["pauses_over_10ms"] == 1
    assert 12 <= stats["pause_max_ms"] < 1000 and stats["pause_total_ms"] >= 12


def test_short_collections_add_up_without_counting_as_long_pauses():
    watch = GcWatch()
    for generation in (0, 0, 1):
        watch("start", {"generation": generation})
        watch("stop", {"generation": generation})
    assert watch.as_dict()["collections"] == [2, 1, 0]
    assert watch.as_dict()["pauses_over_10ms"] == 0


def test_settling_the_heap_freezes_what_exists_and_starts_watching():
    code = (
        "import gc; from balance import runtime\n"
        "assert runtime.gc_stats() is None\n"
        "runtime.settle_heap()\n"
        "assert gc.get_freeze_count() > 0, 'start-up objects are frozen'\n"
        "assert gc.get_threshold()[0] == runtime.YOUNG_THRESHOLD\n"
        "gc.collect()\n"
        "assert runtime.gc_stats()['collections'][2] >= 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_after_lean_greenlets_a_greenlet_keeps_no_record_of_who_spawned_it_or_from_where(monkeypatch):
    import gevent

    from balance.runtime import lean_greenlets

    monkeypatch.setattr(gevent.config, "track_greenlet_tree", True)  # gevent's default, put back after the test
    before = gevent.Greenlet(lambda: None)
    lean_greenlets()
    after = gevent.Greenlet(lambda: None)
    assert before.spawning_stack is not None and before.spawning_greenlet is not None
    assert after.spawning_stack is None and after.spawning_greenlet is None
