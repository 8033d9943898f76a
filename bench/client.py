"""The load client: C concurrent SMTP connections (asyncio + aiosmtplib) sending a corpus.

Each connection says EHLO once and then sends mail after mail (MAIL, RCPT, DATA), as an MTA
that reuses its connection does. The latency of one mail is DATA→250: from the DATA command
to the reply after the final dot, so it covers the transfer of the bytes and the server's
decision (postdesk's commit). The client records its own CPU time, so the report can say
whether it, rather than the server, was the limit.
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


async def _connection(port: int, mails: Sequence[Mail], next_index, result: Blast) -> None:
    client = SMTP(hostname=HOST, port=port, timeout=300, local_hostname="client.bench.test",
                  start_tls=False)
    await client.connect()
    try:
        while (index := next_index()) is not None:
            mail = mails[index]
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


async def blast(port: int, mails: Sequence[Mail], concurrency: int) -> Blast:
    """Send every mail once over ``concurrency`` connections; returns what happened."""
    cursor = iter(range(len(mails)))
    result = Blast()

    def next_index() -> int | None:
        return next(cursor, None)

    cpu = time.process_time()
    result.started = time.monotonic()
    await asyncio.gather(*(_connection(port, mails, next_index, result)
                           for _ in range(concurrency)))
    result.client_cpu = time.process_time() - cpu
    result.ended = result.ended or time.monotonic()
    return result


def run_blast(port: int, mails: Sequence[Mail], concurrency: int) -> Blast:
    return asyncio.run(blast(port, mails, concurrency))
