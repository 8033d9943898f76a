"""GroupCommitter: mails that arrive together share a commit, within a count and a byte limit."""

from __future__ import annotations

import asyncio
import threading

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
