"""Sample a running ``postdesk serve`` with py-spy: which thread holds the interpreter, and where.

pyinstrument only sees the thread it runs in; py-spy samples every thread of another process
from outside (``--nonblocking``, so the server is not paused). The raw collapsed stacks are
folded into the share of samples per thread and the functions that take the most time.
Optional: without the ``py-spy`` executable (``pip install -e '.[bench]'``) nothing is sampled.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def executable() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, out: Path, rate: int = 100) -> Iterator[bool]:
    """Sample ``pid`` while the block runs; yields False when py-spy is not there."""
    tool = executable()
    if tool is None:
        yield False
        return
    proc = subprocess.Popen([tool, "record", "--pid", str(pid), "--format", "raw", "-o", str(out),
                             "--threads", "--rate", str(rate), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarise(raw: Path, top: int = 25) -> dict:
    """Share of samples per thread; top functions (inclusive and own) per thread."""
    threads: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines() if raw.exists() else ():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        name = frames[0].split(":", 1)[-1].strip() if ":" in frames[0] else frames[0]
        threads[name] += int(count)
        own[(name, frames[-1])] += int(count)
        for frame in set(frames[1:]):
            inclusive[(name, frame)] += int(count)
    total = sum(threads.values()) or 1
    return {"samples": total,
            "threads": {name: n / total for name, n in threads.most_common()},
            "inclusive": [(t, f, n / total) for (t, f), n in inclusive.most_common(top * 3)
                          if "threading.py" not in f and "<frozen" not in f][:top],
            "own": [(t, f, n / total) for (t, f), n in own.most_common(top)]}
