"""postdesk's SMTP edge that stores nothing: the real ``SmtpGateway`` (its sessions, its DATA
reader, its checks, its INFO line per accepted mail) whose accept answers at once with a new
id, without a commit, a writer thread or a database.

Beside the do-nothing server and ``serve``, it splits issue 24's p99 DATA→250 in two: what
the SMTP edge costs by itself, and what storing the mail before the 250 adds. Run it in its
own process, ``python -m bench.edge_sink PORT``; it logs at INFO to stderr as ``serve`` does,
prints ``ready PORT`` once it listens and stops on SIGTERM. Only ever binds 127.0.0.1.

``python -m bench.edge_sink PORT COMMIT_MS``: the mails go through the real ``GroupCommitter``
instead, whose writer thread takes COMMIT_MS milliseconds per batch without holding the
interpreter lock (a sleep, as a commit waiting for the disk): what the commit before the 250
costs the p99 when each commit takes that long and no CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time

from bench.corpus import DESK
from bench.sink import HOST
from postdesk.gateway.intake import GroupCommitter
from postdesk.gateway.smtp import SmtpGateway
from postdesk.mail.envelope import Envelope
from postdesk.runtime import logs


class SleepingStore:
    """An intake for ``GroupCommitter`` whose every commit is a sleep of ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ids = itertools.count(1)

    def store_many(self, mails) -> list[int]:
        time.sleep(self.seconds)
        return [next(self.ids) for _ in mails]


async def serve(port: int, commit_ms: float | None = None) -> None:
    ids = itertools.count(1)

    async def answer_at_once(raw: bytes | bytearray, envelope: Envelope) -> int:
        return next(ids)

    committer = None if commit_ms is None else GroupCommitter(SleepingStore(commit_ms / 1000))
    if committer is not None:
        committer.start()
    gateway = SmtpGateway(host=HOST, port=port, domains=[DESK.split("@")[1]],
                          accept=answer_at_once if committer is None else committer,
                          hostname="edge-sink.bench.test")
    await gateway.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"ready {gateway.port}", flush=True)
    await stopping.wait()
    await gateway.stop(grace=1)
    if committer is not None:
        committer.stop()


if __name__ == "__main__":
    logs.setup("INFO")  # serve's default: text lines, addresses redacted, on stderr
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                      float(sys.argv[2]) if len(sys.argv) > 2 else None))
