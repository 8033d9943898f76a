"""The SMTP edge alone, for tests of its group commit: a gateway on its own asyncio loop in a
thread, storing through a :class:`GroupCommitter`, as ``serve`` runs it."""

from __future__ import annotations

import asyncio
import threading

from postdesk.gateway.intake import GroupCommitter
from postdesk.gateway.smtp import SmtpGateway


class Edge:
    """A gateway on its own asyncio loop in a thread, storing through a GroupCommitter."""

    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = SmtpGateway(host="127.0.0.1", port=0, accept=committer,
                                   domains=["desk.test"], hostname="postdesk.test")
        committer.start()
        self.run(self.gateway.start())

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self.gateway.stop(grace=1))
        self.committer.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()
