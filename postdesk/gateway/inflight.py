"""How many bytes of mail the SMTP edge holds in memory at once: ``[smtp] max_bytes_in_flight``.

Every mail being received, or received and waiting for its commit, holds its bytes against one
budget. A sender that announced its size (``MAIL FROM:<…> SIZE=n``) is let in once ``n`` fits,
after a short wait for other mails to be stored; every mail takes its bytes line by line as they
arrive, and one that no longer fits is read to its end and dropped, so that the edge answers
``452`` and the sender retries later. A mail alone on the edge always fits, whatever its size
(refusing big mails is ``max_message_bytes``'s job): the budget slows mail down, it never stops
it. A limit of 0 turns the budget off. Used from one asyncio loop only.
"""

from __future__ import annotations

import asyncio
import contextlib


class ByteBudget:
    """The bytes all mails on the edge may hold together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._freed = asyncio.Event()

    def fits(self, size: int, held: int = 0) -> bool:
        """Whether ``size`` more bytes fit for a mail that already holds ``held`` of them."""
        return self.limit <= 0 or self.in_use + size <= self.limit or self.in_use == held

    async def wait_until_fits(self, size: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``size`` bytes fit; says whether they do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.fits(size):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        return True

    def hold(self) -> Hold:
        """A new, empty hold for one mail."""
        return Hold(self)

    def give_back(self, size: int) -> None:
        self.in_use -= size
        self._freed.set()


class Hold:
    """The bytes one mail holds against the budget: reserved ahead (its announced size) or
    taken as its lines arrive; given back all at once."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.bytes = 0  # held against the budget
        self.used = 0  # of them, taken by lines received

    def reserve(self, size: int) -> bool:
        """Hold at least ``size`` bytes if they fit; False (and nothing more held) if not."""
        return self._grow(size - self.bytes)

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes received, holding more if the reserve is spent."""
        if not self._grow(self.used + size - self.bytes):
            return False
        self.used += size
        return True

    def release(self) -> None:
        if self.bytes:
            self._budget.give_back(self.bytes)
        self.bytes = self.used = 0

    def _grow(self, more: int) -> bool:
        if more <= 0:
            return True
        if not self._budget.fits(more, self.bytes):
            return False
        self._budget.in_use += more
        self.bytes += more
        return True


def declared_size(options: list[str]) -> int:
    """The ``SIZE=`` of a MAIL command's parameters (RFC 1870), 0 when absent or unreadable."""
    for option in options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0
