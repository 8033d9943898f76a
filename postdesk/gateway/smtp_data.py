"""Read the mail of one SMTP DATA command off the connection, within the edge's limits.

aiosmtpd keeps each line of a mail as its own ``bytearray`` in a list and joins them at the
end: about three times the mail's size per connection (a 25 MB mail of 78-byte base64 lines is
320,000 objects). Here the lines go into one buffer as they arrive, dot-unstuffed (RFC 5321
4.5.2), and that buffer is what the edge stores: a mail costs its size. The limits are
aiosmtpd's — ``max_message_bytes`` and the line length, each answered once the final dot came
(RFC 5321 4.2.5) — plus the in-flight budget of ``inflight``: a mail that no longer fits is
read to its end and dropped. A mail over a limit frees its bytes at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from postdesk.gateway.inflight import Hold

TOO_BIG = "too big"
LINE_TOO_LONG = "line too long"
OVER_BUDGET = "over budget"  # the only temporary one: another limit hit later replaces it
_END = b".\r\n"


@dataclass(frozen=True)
class Received:
    # The mail's bytes, handed on as read (a copy into ``bytes`` cost another mail's size at
    # the edge's peak); None when ``problem`` is set.
    content: bytearray | None
    problem: str | None


async def read_data(reader: asyncio.StreamReader, *, max_bytes: int | None, max_line: int,
                    hold: Hold) -> Received:
    """The mail after ``354``, up to the lone dot; ``hold`` takes its bytes as they arrive."""
    reading = _Reading(max_bytes, max_line, hold)
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as overrun:  # drained, and refused after the dot
            reading.refuse(LINE_TOO_LONG)
            line = await reader.read(overrun.consumed)
        if line == _END and not reading.inside_long_line:
            return reading.received()
        reading.add(line)


class _Reading:
    """One DATA section being read: the kept bytes, or the first problem met."""

    def __init__(self, max_bytes: int | None, max_line: int, hold: Hold) -> None:
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.hold = hold
        self.buffer = bytearray()
        self.problem: str | None = None
        self.total = 0
        self.inside_long_line = False  # between the pieces of a line over the reader's limit

    def add(self, line: bytes) -> None:
        self.total += len(line)
        if self.max_bytes and self.total > self.max_bytes:
            self.refuse(TOO_BIG)
        complete = line.endswith(b"\r\n")
        if complete and not self.inside_long_line and self.problem is None:
            self._keep(line)
        self.inside_long_line = not complete

    def refuse(self, problem: str) -> None:
        """Drop what was kept; the first permanent problem wins over the budget's temporary one."""
        if self.problem in (None, OVER_BUDGET):
            self.problem = problem
        if self.buffer:
            self.buffer = bytearray()
        self.hold.release()

    def received(self) -> Received:
        if self.problem is not None:
            return Received(None, self.problem)
        content, self.buffer = self.buffer, bytearray()
        return Received(content, None)

    def _keep(self, line: bytes) -> None:
        """Append one line without its transparency dot, if it is short enough and fits."""
        if len(line) > self.max_line:
            self.refuse(LINE_TOO_LONG)
        elif not self.hold.take(len(line)):
            self.refuse(OVER_BUDGET)
        else:
            self.buffer += memoryview(line)[1:] if line[:1] == b"." else line
