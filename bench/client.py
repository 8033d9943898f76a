"""The load client: C concurrent SMTP connections (asyncio + aiosmtplib) sending a corpus.

Each connection says EHLO once and then sends mail after mail (MAIL, RCPT, DATA), as an MTA
that reuses its connection does. The latency of one mail is DATA→250: from the DATA command
to the reply after the final dot, so it covers the transfer of the bytes and the server's
decision (postdesk's commit). The client records its own CPU time, so the report can say
whether it, rather than the server, was the limit.

Unpaced, every connection sends its next mail as soon as the last one is answered: the servers
run flat out, and the latencies are those of a saturated machine (a closed loop: at C
connections the mean latency is about C ÷ the throughput). Paced (``rate``), mail *i* is sent
no earlier than *i* ÷ ``rate`` seconds after the start, as mail arriving at that rate: the
latencies are those of a server that keeps up, as long as the connections are enough for the
rate (``behind`` counts the mails that could only start more than one interval late).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiosmtplib import SMTP

from bench.corpus import DESK, Mail
from bench.sink import HOST


@dataclass
class Blast:
    """What one run of the client saw."""

    sent: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, DATA→250, accepted mails
    started: float = 0.0  # time.monotonic()
    ended: float = 0.0  # when the last reply came
    client_cpu: float = 0.0  # seconds of this process's CPU during the run
    errors: list[str] = field(default_factory=list)
    rate: float | None = None  # paced: mails per second offered
    behind: int = 0  # paced: mails that started more than one interval after their time

    @property
    def wall(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def accepted_per_second(self) -> float:
        return self.sent / self.wall

    @property
    def client_cpu_share(self) -> float:
        """The client's CPU use as a share of one core (near 1.0: the client was the limit)."""
        return self.client_cpu / self.wall


class _Pace:
    """A paced run's clock: it starts once every connection is open (or has failed to open),
    so that no mail is late by the time the connections took to open."""

    def __init__(self, rate: float, connections: int) -> None:
        self.rate = rate
        self.opening = connections
        self.opened = asyncio.Event()
        self.origin = 0.0

    def open(self) -> None:
        self.opening -= 1
        if self.opening == 0:
            self.origin = time.monotonic()
            self.opened.set()

    async def wait_for(self, index: int) -> bool:
        """Sleep until mail ``index``'s time; True when it is already more than one interval
        late."""
        await self.opened.wait()
        late = time.monotonic() - (self.origin + index / self.rate)
        if late < 0:
            await asyncio.sleep(-late)
        return late > 1 / self.rate


async def _connection(port: int, mails: Sequence[Mail], next_index, result: Blast,
                      pace: _Pace | None) -> None:
    client = SMTP(hostname=HOST, port=port, timeout=300, local_hostname="client.bench.test",
                  start_tls=False)
    try:
        await client.connect()
    finally:
        if pace:
            pace.open()
    try:
        while (index := next_index()) is not None:
            mail = mails[index]
            if pace and await pace.wait_for(index):
                result.behind += 1
            await client.mail(mail.sender)
            await client.rcpt(DESK)
            begun = time.perf_counter()
            reply = await client.data(mail.raw)
            elapsed = time.perf_counter() - begun
            if reply.code == 250:
                result.sent += 1
                result.latencies.append(elapsed)
            else:
                result.refused += 1
                result.errors.append(f"{reply.code} {reply.message}"[:200])
            result.ended = time.monotonic()
        await client.quit()
    except Exception as exc:  # noqa: BLE001 - a broken connection is a result, not a crash
        result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        client.close()


async def blast(port: int, mails: Sequence[Mail], concurrency: int,
                rate: float | None = None) -> Blast:
    """Send every mail once over ``concurrency`` connections, paced at ``rate`` mails per
    second if given; returns what happened."""
    cursor = iter(range(len(mails)))
    result = Blast(rate=rate)

    def next_index() -> int | None:
        return next(cursor, None)

    cpu = time.process_time()
    result.started = time.monotonic()
    pace = _Pace(rate, concurrency) if rate else None
    await asyncio.gather(*(_connection(port, mails, next_index, result, pace)
                           for _ in range(concurrency)))
    result.client_cpu = time.process_time() - cpu
    result.ended = result.ended or time.monotonic()
    return result


def run_blast(port: int, mails: Sequence[Mail], concurrency: int,
              rate: float | None = None) -> Blast:
    return asyncio.run(blast(port, mails, concurrency, rate))
