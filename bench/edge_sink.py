"""postdesk's SMTP edge that stores nothing: the real ``SmtpGateway`` (its sessions, its DATA
reader, its checks, its INFO line per accepted mail) whose accept answers at once with a new
id, without a commit, a writer thread or a database.

Beside the do-nothing server and ``serve``, it splits issue 24's p99 DATA→250 in two: what
the SMTP edge costs by itself, and what storing the mail before the 250 adds. Run it in its
own process, ``python -m bench.edge_sink PORT``; it logs at INFO to stderr as ``serve`` does,
prints ``ready PORT`` once it listens and stops on SIGTERM. Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys

from bench.corpus import DESK
from bench.sink import HOST
from postdesk.gateway.smtp import SmtpGateway
from postdesk.mail.envelope import Envelope
from postdesk.runtime import logs


async def serve(port: int) -> None:
    ids = itertools.count(1)

    async def accept(raw: bytes | bytearray, envelope: Envelope) -> int:
        return next(ids)

    gateway = SmtpGateway(host=HOST, port=port, accept=accept, domains=[DESK.split("@")[1]],
                          hostname="edge-sink.bench.test")
    await gateway.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"ready {gateway.port}", flush=True)
    await stopping.wait()
    await gateway.stop(grace=1)


if __name__ == "__main__":
    logs.setup("INFO")  # serve's default: text lines, addresses redacted, on stderr
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
