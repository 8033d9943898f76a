"""Server subprocesses of the benchmarks: ``postdesk serve``, the do-nothing sink, and postdesk's
edge storing nothing (``bench.edge_sink``).

Start one on a free loopback port, wait until it listens, read its CPU time and peak memory
from ``/proc``, stop it with SIGTERM (SIGKILL if it does not go). Nothing here talks to any
address but 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.sink import HOST

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def start_sink(log: Path, module: str = "bench.sink",
               *args: str) -> tuple[subprocess.Popen, int]:
    """The do-nothing aiosmtpd server (or ``bench.edge_sink``, postdesk's edge storing
    nothing, with ``args``) in its own process; returns it and its port."""
    handle = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", module, "0", *args], stdout=subprocess.PIPE,
                            stderr=handle, env=_env(), cwd=ROOT)
    line = proc.stdout.readline().decode()
    if not line.startswith("ready"):
        stop(proc)
        raise RuntimeError(f"the sink did not start: {log.read_text()}")
    return proc, int(line.split()[1])


def start_serve(config: Path, log: Path, *flags: str) -> tuple[subprocess.Popen, int]:
    """``postdesk serve`` on the port written in ``config``; returns it when it listens."""
    port = int(config.read_text().split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    handle = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "postdesk", "--config", str(config), "serve",
                             *flags], stdout=handle, stderr=handle, env=_env(), cwd=config.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"postdesk serve exited {proc.returncode}: "
                                   f"{log.read_text()[-2000:]}") from None
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"postdesk serve did not listen on {port}: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def memory_kib(pid: int, key: str = "VmHWM") -> int:
    """A line of /proc/PID/status in KiB: VmHWM (peak resident set) or VmRSS (now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def load_average() -> float:
    return os.getloadavg()[0]
