"""When each changed site is pushed."""

from __future__ import annotations

from zenovay.push import timing


class Schedule:
    """When each changed site is pushed: at once, then at most once a second."""

    def __init__(self) -> None:
        self.due: dict[int, float] = {}
        self.pushed: dict[int, float] = {}

    def changed(self, website_pk: int, now: float) -> None:
        when = max(now, self.pushed.get(website_pk, -timing.CHANGE_DELAY) + timing.CHANGE_DELAY)
        self.due[website_pk] = min(self.due.get(website_pk, when), when)

    def later(self, website_pk: int, now: float) -> None:
        self.due[website_pk] = now + timing.CHANGE_DELAY

    def take_due(self, now: float) -> list[int]:
        ready = [pk for pk, when in self.due.items() if when <= now]
        for pk in ready:
            del self.due[pk]
        for pk in [pk for pk, when in self.pushed.items() if when < now - timing.CHANGE_DELAY]:
            del self.pushed[pk]
        return ready

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)
