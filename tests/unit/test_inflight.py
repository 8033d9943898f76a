"""The SMTP edge's in-flight byte budget and its DATA reader, without a socket."""

from __future__ import annotations

import asyncio

import pytest

from postdesk.gateway.inflight import ByteBudget, declared_size
from postdesk.gateway.smtp_data import LINE_TOO_LONG, OVER_BUDGET, TOO_BIG, read_data


def test_holds_take_and_give_back_their_bytes():
    budget = ByteBudget(100)
    first, second = budget.hold(), budget.hold()
    assert first.take(60) and budget.in_use == 60
    assert not second.take(41) and second.bytes == 0
    assert second.take(40) and budget.in_use == 100
    first.release()
    assert budget.in_use == 40 and first.bytes == 0


def test_a_reserve_is_spent_before_more_is_taken():
    budget = ByteBudget(100)
    hold = budget.hold()
    assert hold.reserve(50) and budget.in_use == 50
    assert hold.take(30) and budget.in_use == 50
    assert hold.take(30) and budget.in_use == 60
    hold.release()
    assert budget.in_use == 0


def test_a_mail_alone_fits_and_zero_means_no_limit():
    alone = ByteBudget(10).hold()
    assert alone.take(1000) and alone.take(1000)
    unlimited = ByteBudget(0)
    assert unlimited.hold().take(10**9) and unlimited.hold().take(10**9)


def test_waiting_for_room_ends_when_bytes_are_given_back_or_at_the_timeout():
    async def scenario():
        budget = ByteBudget(100)
        hold = budget.hold()
        hold.take(80)
        assert not await budget.wait_until_fits(50, timeout=0.05)
        asyncio.get_running_loop().call_later(0.05, hold.release)
        return await budget.wait_until_fits(50, timeout=5)

    assert asyncio.run(scenario())


@pytest.mark.parametrize(("options", "size"), [
    (["SIZE=2500"], 2500), (["BODY=8BITMIME", "size=12"], 12), ([], 0), (["SIZE=lots"], 0),
])
def test_declared_size(options, size):
    assert declared_size(options) == size


def read(wire: bytes, *, budget: int = 0, max_bytes: int | None = None, max_line: int = 1000):
    """``read_data`` over ``wire``; returns what it received and what is left to read."""
    async def scenario():
        reader = asyncio.StreamReader(limit=max_line)
        reader.feed_data(wire)
        reader.feed_eof()
        shared = ByteBudget(budget)
        shared.hold().take(1)  # another mail holds a byte: this one is not alone
        hold = shared.hold()
        received = await read_data(reader, max_bytes=max_bytes, max_line=max_line, hold=hold)
        return received, await reader.read(), hold.bytes
    return asyncio.run(scenario())


def test_dots_are_unstuffed_and_the_next_command_is_left_unread():
    received, rest, _ = read(b"Subject: x\r\n..dot\r\n..\r\n\r\n.\r\nQUIT\r\n")
    assert received.content == b"Subject: x\r\n.dot\r\n.\r\n\r\n" and received.problem is None
    assert rest == b"QUIT\r\n"


def test_bare_lf_stays_inside_a_line():
    received, _, _ = read(b"Subject: x\nbody\n.\n\r\n.\r\n")
    assert received.content == b"Subject: x\nbody\n.\n\r\n"


@pytest.mark.parametrize(("wire", "options", "problem"), [
    (b"a" * 50 + b"\r\n" + b"b\r\n" * 30, {"max_bytes": 60}, TOO_BIG),
    (b"a" * 3000 + b"\r\nok\r\n", {}, LINE_TOO_LONG),
    (b"a\r\n" * 30, {"budget": 20}, OVER_BUDGET),
    (b"a\r\n" * 30, {"budget": 20, "max_bytes": 60}, TOO_BIG),  # the permanent refusal wins
    (b"a" * 3000 + b"\r\n" + b"b\r\n" * 30, {"budget": 20, "max_bytes": 60}, LINE_TOO_LONG),
])
def test_a_limit_drops_the_mail_reads_to_the_dot_and_gives_the_bytes_back(wire, options, problem):
    received, rest, held = read(wire + b".\r\nQUIT\r\n", **options)
    assert received == type(received)(None, problem)
    assert rest == b"QUIT\r\n" and held == 0
