"""A do-nothing SMTP server: aiosmtpd whose DATA handler answers 250 at once and keeps nothing.

It is the ceiling postdesk's SMTP edge is measured against (the same clients, the same corpus,
in the same run) and the local relay the outbound benchmark delivers to. Run it in its own
process, ``python -m bench.sink PORT``; it prints ``ready PORT`` once it listens and stops on
SIGTERM. Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"
MAX_BYTES = 32 * 1024 * 1024


class NullHandler:
    """Take the envelope and the bytes, keep nothing, say yes."""

    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 2.0.0 OK: discarded"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = NullHandler()

    def session() -> SMTP:
        return SMTP(handler, data_size_limit=MAX_BYTES, enable_SMTPUTF8=True, decode_data=False,
                    hostname="sink.bench.test", ident="bench-sink", loop=loop)

    server = await loop.create_server(session, HOST, port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await stopping.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
