"""Who holds a claimed row: a holder name per process, and whether that process still runs.

Claims (inbound mail taken by a worker, outbox rows taken by a sender) carry their holder's
name ``host:pid:token``. When the holder was a process on this host that no longer exists, its
claims are given back at once; holders on other hosts are released after a timeout instead.
"""

from __future__ import annotations

import os
import socket


def holder_name(owner: object) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(owner):x}"


def is_dead(holder: str | None) -> bool:
    """True when ``holder`` names a process on this host that no longer runs."""
    if not holder:
        return False
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
