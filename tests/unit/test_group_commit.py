"""GroupCommitter: mails that arrive together share a commit, within a count and a byte limit."""

from __future__ import annotations

import asyncio
import sys
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


class HeldIntake:
    """Each batch whose first mail starts with ``held`` waits in its commit until the test
    lets it go; the others are stored at once. Records the batches in commit order."""

    def __init__(self, held: bytes = b"held") -> None:
        self.held = held
        self.batches: list[list[bytes]] = []
        self.entered = threading.Event()
        self.may_go = threading.Event()
        self._lock = threading.Lock()
        self._next = 0

    def store_many(self, mails):
        if bytes(mails[0][0]).startswith(self.held):
            self.entered.set()
            self.may_go.wait(timeout=10)
        with self._lock:
            self.batches.append([bytes(raw) for raw, _ in mails])
            first = self._next + 1
            self._next += len(mails)
        return list(range(first, first + len(mails)))


def test_with_two_writers_a_mail_is_committed_while_another_commit_waits():
    """The second writer takes what arrives while the first is in its commit (waiting for
    the disk): that mail is answered at once instead of a whole commit later."""
    intake = HeldIntake()
    committer = GroupCommitter(intake, writers=2)
    committer.start()

    async def scenario():
        held = asyncio.ensure_future(committer(b"held", ENVELOPE))
        await asyncio.to_thread(intake.entered.wait, 5)
        quick = await asyncio.wait_for(committer(b"quick", ENVELOPE), 5)
        stored_while_held = list(intake.batches)
        intake.may_go.set()
        return quick, await held, stored_while_held

    try:
        quick, held, stored_while_held = asyncio.run(scenario())
    finally:
        intake.may_go.set()
        committer.stop()
    assert stored_while_held == [[b"quick"]]
    assert intake.batches == [[b"quick"], [b"held"]]
    assert {quick, held} == {1, 2}


def test_a_failed_commit_answers_its_own_mails_451_and_the_other_writer_goes_on():
    class FailingIntake(HeldIntake):
        def store_many(self, mails):
            if bytes(mails[0][0]).startswith(b"bad"):
                self.entered.set()
                self.may_go.wait(timeout=10)
                raise RuntimeError("the disk is on fire")
            return super().store_many(mails)

    intake = FailingIntake()
    committer = GroupCommitter(intake, writers=2)
    committer.start()

    async def scenario():
        bad = asyncio.ensure_future(committer(b"bad", ENVELOPE))
        await asyncio.to_thread(intake.entered.wait, 5)
        good = await asyncio.wait_for(committer(b"good", ENVELOPE), 5)
        intake.may_go.set()
        with pytest.raises(TempFail, match="store failed: the disk is on fire"):
            await bad
        after = await asyncio.wait_for(committer(b"after", ENVELOPE), 5)
        return good, after

    try:
        good, after = asyncio.run(scenario())
        alive = committer.alive
    finally:
        intake.may_go.set()
        committer.stop()
    assert (good, after) == (1, 2)
    assert intake.batches == [[b"good"], [b"after"]]
    assert alive


def test_stop_ends_every_writer():
    committer = GroupCommitter(HeldIntake(), writers=3)
    committer.start()
    assert committer.alive and committer.writers == 3
    asyncio.run(committer(b"one", ENVELOPE))
    committer.stop()
    assert [thread.is_alive() for thread in committer._threads] == [False, False, False]
    with pytest.raises(TempFail, match="shutting down"):
        asyncio.run(committer(b"late", ENVELOPE))


def test_each_writer_is_supervised_under_its_own_name(monkeypatch):
    """A writer that dies (here after a commit, before its answers) is started again; the
    others go on meanwhile."""
    from postdesk import supervision  # noqa: PLC0415

    monkeypatch.setitem(supervision._faults, "intake-writer", 1)
    intake = HeldIntake()
    committer = GroupCommitter(intake, writers=2, timeout=0.5)
    assert [thread.name for thread in committer._threads] == ["intake-writer", "intake-writer-2"]
    for thread in committer._threads:
        thread.pause = (0.01, 0.01)
    committer.start()

    async def scenario():
        with pytest.raises(TempFail, match="did not answer"):
            await committer(b"first", ENVELOPE)  # stored; its writer died before answering
        return await asyncio.wait_for(committer(b"second", ENVELOPE), 5)

    try:
        second = asyncio.run(scenario())
        deadline = time.monotonic() + 5
        while sum(t.restarts for t in committer._threads) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        restarts = sum(t.restarts for t in committer._threads)
        alive = committer.alive
    finally:
        committer.stop()
    assert second == 2
    assert intake.batches == [[b"first"], [b"second"]]
    assert restarts == 1 and alive


class CountingIntake:
    """Stores at once, as fast as it can; records every batch (from any writer)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self._lock = threading.Lock()
        self._next = 0

    def store_many(self, mails):
        with self._lock:
            self.batches.append([bytes(raw) for raw, _ in mails])
            first = self._next + 1
            self._next += len(mails)
        return list(range(first, first + len(mails)))


@pytest.fixture
def busy_switching():
    """Threads switched as often as the interpreter can, for the length of a test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize(("writers", "sessions"), [(1, 1), (3, 1), (1, 8)])
def test_no_mail_is_left_queued_while_the_writers_sleep(writers, sessions, busy_switching):
    """Mails queued at every moment of a writer's cycle (in its commit, just done, going to
    sleep) are all committed and answered in time, each once, with the id of its own commit.
    One session alone sends its next mail only when the last is answered, so a mail left
    queued while the writers sleep would wait for the store timeout and fail the test.
    Threads switch as often as the interpreter can, so that they interleave at many more
    points; a race is still not certain to show in one run."""
    intake = CountingIntake()
    committer = GroupCommitter(intake, writers=writers, timeout=5)
    committer.start()
    per_session = 1600 // sessions

    async def session(number: int) -> list[tuple[bytes, int]]:
        told = []
        for mail in range(per_session):
            raw = f"{number}-{mail}".encode()
            told.append((raw, await committer(raw, ENVELOPE)))
        return told

    async def scenario():
        return await asyncio.gather(*(session(n) for n in range(sessions)))

    try:
        told = [pair for pairs in asyncio.run(scenario()) for pair in pairs]
    finally:
        committer.stop()
    stored = {}
    for batch in intake.batches:
        for raw in batch:
            stored[len(stored) + 1] = raw
    assert len(stored) == 1600
    assert {number: raw for raw, number in told} == stored


def test_stop_lets_the_writers_commit_what_was_queued_before_it():
    """Mails queued behind two commits in progress when ``stop()`` is called are committed
    and answered before the writers end; a mail after it is answered "shutting down"."""
    intake = HeldIntake()
    committer = GroupCommitter(intake, writers=2)
    committer.start()
    stopped = threading.Event()

    async def scenario():
        held = asyncio.ensure_future(committer(b"held", ENVELOPE))
        await asyncio.to_thread(intake.entered.wait, 5)
        # the other writer takes the next one at once; hold the second commit too
        second = asyncio.ensure_future(committer(b"held-2", ENVELOPE))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(committer(raw, ENVELOPE)) for raw in (b"q1", b"q2")]
        await asyncio.sleep(0.05)  # queued behind two commits in progress
        stopping = asyncio.ensure_future(asyncio.to_thread(committer.stop))
        await asyncio.sleep(0.05)
        with pytest.raises(TempFail, match="shutting down"):
            await committer(b"late", ENVELOPE)
        intake.may_go.set()
        answers = await asyncio.wait_for(asyncio.gather(held, second, *queued), 5)
        await stopping
        stopped.set()
        return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        intake.may_go.set()
        committer.stop()
    assert stopped.is_set()
    assert sorted(answers) == [1, 2, 3, 4]
    assert sorted(raw for batch in intake.batches for raw in batch) == [b"held", b"held-2",
                                                                        b"q1", b"q2"]
    assert not any(thread.is_alive() for thread in committer._threads)
