"""Shards finish in any order; the working file takes them in dataset order. :class:`InOrder` holds the
early finishers until the shards before them are in, and says how far ahead new shards may be sent so
that the shards held stay bounded (a slow or restarted worker must not make the driver hoard results)."""

from __future__ import annotations

from typing import Any, Iterator


class InOrder:
    """Results keyed by shard index ``0, 1, 2, ...``; :meth:`ready` hands them out in that order."""

    def __init__(self, window: int):
        self.window = max(1, int(window))  # shards sent but not yet handed out, at most
        self.next_out = 0  # the first shard not handed out yet
        self._held: dict[int, Any] = {}

    def may_send(self, index: int) -> bool:
        """Whether shard ``index`` may be sent now without exceeding the window."""
        return index < self.next_out + self.window

    def put(self, index: int, result: Any) -> None:
        if index < self.next_out or index in self._held:
            raise ValueError(f"shard {index} arrived twice")
        self._held[index] = result

    def ready(self) -> Iterator[tuple[int, Any]]:
        """The held results that continue the order, removed as they are handed out."""
        while self.next_out in self._held:
            index = self.next_out
            self.next_out += 1
            yield index, self._held.pop(index)

    @property
    def held(self) -> int:
        return len(self._held)
