"""Admission: bounded concurrency, a short bounded newest-first wait, refusal beyond."""

from __future__ import annotations

import asyncio

import pytest

from recforge.serving._admission import Admission


def run(coro):
    return asyncio.run(coro)


def test_refuses_at_once_without_a_queue():
    async def go():
        a = Admission(2)
        assert await a.acquire()
        assert await a.acquire()
        assert not await a.acquire()
        a.release()
        assert await a.acquire()
        assert a.in_flight == 2

    run(go())


def test_a_waiter_takes_the_released_slot():
    async def go():
        a = Admission(1, max_waiting=1, max_wait_s=1.0)
        assert await a.acquire()
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0.01)
        assert a.waiting == 1
        a.release()  # handed over: still one in flight
        assert await waiter
        assert (a.in_flight, a.waiting) == (1, 0)
        a.release()
        assert a.in_flight == 0

    run(go())


def test_a_waiter_gives_up_after_max_wait():
    async def go():
        a = Admission(1, max_waiting=4, max_wait_s=0.05)
        await a.acquire()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert not await a.acquire()
        assert 0.04 < loop.time() - t0 < 0.5
        assert a.waiting == 0
        a.release()
        assert a.in_flight == 0

    run(go())


def test_newest_waiter_is_served_first_and_the_queue_is_bounded():
    async def go():
        a = Admission(1, max_waiting=2, max_wait_s=1.0)
        await a.acquire()
        old = asyncio.create_task(a.acquire())
        await asyncio.sleep(0.01)
        new = asyncio.create_task(a.acquire())
        await asyncio.sleep(0.01)
        assert not await a.acquire()  # two already waiting: refused at once
        a.release()
        await asyncio.sleep(0.01)
        assert new.done()
        assert new.result()
        assert not old.done()
        a.release()
        assert await old
        assert a.in_flight == 1

    run(go())


def test_a_cancelled_waiter_leaves_the_queue_and_frees_a_handed_slot():
    async def go():
        a = Admission(1, max_waiting=2, max_wait_s=1.0)
        await a.acquire()
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert a.waiting == 0
        # handed a slot and cancelled before it could run: either the cancellation wins and
        # the slot goes back, or the slot wins and its owner releases it; none is lost
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0.01)
        a.release()
        waiter.cancel()
        try:
            owns_slot = await waiter
        except asyncio.CancelledError:
            owns_slot = False
        if owns_slot:
            a.release()
        assert (a.in_flight, a.waiting) == (0, 0)

    run(go())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="limit must be >= 1"):
        Admission(0)
