"""Run ``postdesk`` commands in forked children of one warm interpreter, and kill them on request.

Starting ``python -m postdesk`` costs about two seconds of imports; a loop of hundreds of
``postdesk ingest`` runs would spend minutes importing. This server imports the command once,
then for each request forks a child that runs the real ``postdesk.cli.main()`` with the
request's arguments, standard input from a file, and its output in a file. With
``kill_after`` the server itself SIGKILLs the child after that many seconds if it still runs
(the child is not reaped yet, so its pid cannot have been reused). One JSON line per request
on stdin; one JSON line per finished child on stdout:
``{"status": EXIT_CODE_OR_MINUS_SIGNAL, "killed": bool, "seconds": float}``.

Run as ``python -m tests.faults.forkserver`` from the repository root.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

import importlib
import pkgutil

import postdesk.cli
import postdesk.gateway.intake  # noqa: F401 - warm the imports the ingest command needs
from postdesk.cli import main

for _module in pkgutil.iter_modules(postdesk.cli.__path__):  # everything main() may import
    importlib.import_module(f"postdesk.cli.{_module.name}")
import postdesk.store.models  # noqa: E402,F401
import prometheus_client  # noqa: E402,F401 - postdesk.metrics imports it at the first count
from sqlalchemy.orm import configure_mappers  # noqa: E402

configure_mappers()  # done once here, not in every child


def run_child(request: dict) -> None:
    """In the child: stdin from the mail file, stdout/stderr to the log, run the command."""
    sys.stdin = open(request["input"], encoding="latin-1")  # noqa: SIM115 - .buffer is read
    log = open(request["log"], "w", encoding="utf-8")  # noqa: SIM115
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    sys.argv = ["postdesk", *request["args"]]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - a crash is exit 70 with its traceback in the log
        traceback.print_exc()
        code = 70
    log.flush()
    os._exit(code)


def wait_child(pid: int, kill_after: float | None) -> tuple[int, bool]:
    """Wait for ``pid``; SIGKILL it after ``kill_after`` seconds if it is still running."""
    killed = False
    if kill_after is not None:
        pidfd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], kill_after)
            if not ready:
                os.kill(pid, signal.SIGKILL)  # not reaped yet: still our child
                killed = True
        finally:
            os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), killed


def main_loop() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        status, killed = wait_child(pid, request.get("kill_after"))
        reply = {"status": status, "killed": killed, "seconds": time.monotonic() - started}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main_loop()
