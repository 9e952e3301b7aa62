"""A clock the test moves by hand: time that passes when the test says, however slow the machine."""
from __future__ import annotations


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
