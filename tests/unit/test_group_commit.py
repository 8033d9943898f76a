"""GroupCommitter: mails that arrive together share a commit, within a count and a byte limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from postdesk.errors import TempFail
from postdesk.gateway.intake import GroupCommitter
from postdesk.mail.envelope import Envelope

ENVELOPE = Envelope("a@client.example", ("help@support.example",), "smtp")


class SlowIntake:
    """Records each batch; the first commit waits until the test lets it go (mail piles up)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.first_entered = threading.Event()
        self.first_may_go = threading.Event()

    def store_many(self, mails):
        if not self.batches:
            self.first_entered.set()
            self.first_may_go.wait(timeout=5)
        self.batches.append([raw for raw, _ in mails])
        start = sum(len(batch) for batch in self.batches[:-1])
        return list(range(start + 1, start + len(mails) + 1))


async def send_all(committer: GroupCommitter, intake: SlowIntake, mails: list[bytes]) -> list[int]:
    first = asyncio.ensure_future(committer(mails[0], ENVELOPE))
    await asyncio.to_thread(intake.first_entered.wait, 5)
    rest = [asyncio.ensure_future(committer(raw, ENVELOPE)) for raw in mails[1:]]
    await asyncio.sleep(0.05)  # all of them queued behind the first commit
    intake.first_may_go.set()
    return await asyncio.gather(first, *rest)


def test_a_batch_closes_at_its_byte_limit_and_a_larger_mail_goes_alone():
    intake = SlowIntake()
    committer = GroupCommitter(intake, max_batch=64, max_batch_bytes=25)
    committer.start()
    mails = [b"first", b"b" * 10, b"c" * 10, b"d" * 10, b"e" * 40, b"f" * 10]
    try:
        ids = asyncio.run(send_all(committer, intake, mails))
    finally:
        committer.stop()
    assert ids == [1, 2, 3, 4, 5, 6]
    assert intake.batches == [[b"first"], [b"b" * 10, b"c" * 10], [b"d" * 10], [b"e" * 40],
                              [b"f" * 10]]


def test_a_batch_closes_at_its_count_limit():
    intake = SlowIntake()
    committer = GroupCommitter(intake, max_batch=2)
    committer.start()
    try:
        asyncio.run(send_all(committer, intake, [b"1", b"2", b"3", b"4", b"5"]))
    finally:
        committer.stop()
    assert [len(batch) for batch in intake.batches] == [1, 2, 2]


class LateIntake:
    """Each commit waits until the test lets it go; records what was stored."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.entered = threading.Event()
        self.may_go = threading.Event()

    def store_many(self, mails):
        self.entered.set()
        self.may_go.wait(timeout=10)
        self.may_go.clear()
        self.stored += [bytes(raw) for raw, _ in mails]
        return list(range(len(self.stored) - len(mails) + 1, len(self.stored) + 1))


def test_a_commit_that_lands_after_the_timeout_keeps_the_writer_alive():
    """The SMTP side answered 451 (store timeout) while the commit was still running; when
    it lands, the writer goes on, and the next mail is stored and answered 250."""
    intake = LateIntake()
    committer = GroupCommitter(intake, timeout=0.2)
    committer.start()

    async def scenario():
        with pytest.raises(TempFail, match="did not answer"):
            await committer(b"slow", ENVELOPE)
        intake.may_go.set()  # the slow commit lands after the 451
        await asyncio.to_thread(_wait_stored, intake, 1)
        intake.may_go.set()
        stored = await asyncio.wait_for(committer(b"next", ENVELOPE), 5)
        return stored, committer.alive

    try:
        next_id, alive = asyncio.run(scenario())
    finally:
        intake.may_go.set()
        committer.stop()
    assert next_id == 2
    assert intake.stored == [b"slow", b"next"]  # the late one is stored: dedupe handles a retry
    assert alive


def test_a_mail_answered_451_before_its_commit_began_is_not_stored():
    """A mail that waited behind a hung commit past the timeout was answered 451 and will be
    sent again: the writer skips it rather than store a copy the sender never saw accepted."""
    intake = LateIntake()
    committer = GroupCommitter(intake, timeout=0.3)
    committer.start()

    async def scenario():
        first = asyncio.ensure_future(committer(b"first", ENVELOPE))
        await asyncio.to_thread(intake.entered.wait, 5)
        with pytest.raises(TempFail):
            await committer(b"queued", ENVELOPE)  # waits behind "first", times out
        with pytest.raises(TempFail):
            await first
        intake.may_go.set()
        await asyncio.to_thread(_wait_stored, intake, 1)
        intake.may_go.set()
        return await asyncio.wait_for(committer(b"after", ENVELOPE), 5)

    try:
        after = asyncio.run(scenario())
    finally:
        intake.may_go.set()
        committer.stop()
    assert intake.stored == [b"first", b"after"]
    assert after == 2


def _wait_stored(intake: LateIntake, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(intake.stored) < count and time.monotonic() < deadline:
        time.sleep(0.01)
