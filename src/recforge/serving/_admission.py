"""Admission control: a few requests run, a few more wait briefly, the rest are refused.

A fixed limit alone sheds requests during any short stall (a burst, a busy neighbour on the
machine), and an unbounded queue turns overload into unbounded latency. :class:`Admission`
does what load-shedding front ends do between the two:

* at most ``limit`` requests run at once;
* up to ``max_waiting`` more wait for a slot, each at most ``max_wait_s``;
* waiters are served newest first (adaptive LIFO): under overload the requests that get a
  slot are the ones that have waited least, so admitted requests stay fast while the oldest
  waiters time out, instead of every request waiting the full timeout in FIFO order;
* everything else is refused at once, and the caller answers 503 with ``Retry-After``.

It lives on one event loop (the server's); all methods must be called from that loop.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Admission"]


class Admission:
    """Bounded concurrency with a short, bounded, newest-first wait.

    Parameters
    ----------
    limit
        Requests running at once.
    max_waiting
        Requests allowed to wait for a slot (0: refuse at once when full).
    max_wait_s
        Longest wait for a slot before refusal.
    """

    def __init__(self, limit: int, max_waiting: int = 0, max_wait_s: float = 0.0) -> None:
        if limit < 1 or max_waiting < 0 or max_wait_s < 0:
            raise ValueError("limit must be >= 1, max_waiting and max_wait_s >= 0")
        self.limit = limit
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._waiters)

    async def acquire(self) -> bool:
        """Take a slot, waiting at most ``max_wait_s``; ``False`` means refused."""
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.max_waiting or self.max_wait_s <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.max_wait_s)
        except TimeoutError:
            if fut.done():  # handed a slot in the same loop iteration as the timeout
                return True
            fut.cancel()
            self._waiters.remove(fut)
            return False
        except asyncio.CancelledError:  # client went away while waiting
            if fut.done() and not fut.cancelled():
                self.release()  # give the slot it was handed to the next one
            else:
                fut.cancel()
                self._waiters.remove(fut)
            raise
        return True

    def release(self) -> None:
        """Return a slot: hand it to the newest waiter, or free it."""
        while self._waiters:
            fut = self._waiters.pop()  # newest first
            if not fut.done():
                fut.set_result(None)  # the slot moves to the waiter; in_flight unchanged
                return
        self.in_flight -= 1
