"""The django-helpdesk side of the ``peer`` benchmark, run by the peer venv's interpreter.

This file imports only the standard library and Django (never postdesk, which the peer venv
need not hold): ``bench.peer`` runs it as a script with the interpreter of a venv where
django-helpdesk (the ``peer`` extra) is installed.

    python helpdesk_child.py check                 # can this interpreter run django-helpdesk?
    python helpdesk_child.py template FOLDER DB    # migrate, make the queue, open the seeds
    python helpdesk_child.py run FOLDER DB         # warm up on one mail, then time the corpus

The environment says how: ``PEER_BENCH_DB`` (set here), ``PEER_BENCH_SYNC`` (the SQLite
settings of ``peer_settings.py``), ``PEER_BENCH_MEDIA`` (where attachments go),
``PEER_BENCH_ONE_COMMIT=1`` (one transaction per mail instead of django-helpdesk's autocommit).

``FOLDER`` holds the mails ``bench.peer`` wrote (``seeds/``, ``warmup.eml``, ``mails/``) and
the generated ``peer_settings.py``. Each mail goes through ``helpdesk.email.
extract_email_metadata``, the function django-helpdesk's ``get_email`` command calls for each
message of a queue's mailbox (``process_queue``; its local-folder branch reads the file as
text, calls it, and deletes the file): parse, find the ticket by the ``[slug-N]`` tag or by
``In-Reply-To``, write the ticket and its follow-up, store the attachments, compose the
notification to the submitter. The files are read before the clock starts, as postdesk's mails
are already stored when its worker is timed. One JSON line is printed on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

QUEUE_SLUG = "bench"


def _setup(folder: Path, database: Path) -> None:
    sys.path.insert(0, str(folder))
    os.environ["DJANGO_SETTINGS_MODULE"] = "peer_settings"
    os.environ["PEER_BENCH_DB"] = str(database)
    import django  # noqa: PLC0415

    django.setup()


def _texts(paths: list[Path]) -> list[str]:
    """What ``process_queue`` does with a file of a local mailbox: read it as text."""
    return [path.read_bytes().decode("utf-8", errors="replace") for path in paths]


def _logger() -> logging.Logger:
    """The queue's logger as ``process_email`` sets it up for a queue whose logging type is
    not set (the default): no handlers, not propagated."""
    logger = logging.getLogger(f"django.helpdesk.queue.{QUEUE_SLUG}")
    logger.handlers = []
    logger.propagate = False
    return logger


def template(folder: Path, database: Path, desk: str) -> dict:
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", verbosity=0, interactive=False)
    from helpdesk.email import extract_email_metadata  # noqa: PLC0415
    from helpdesk.models import Queue, Ticket  # noqa: PLC0415

    queue = Queue.objects.create(title="Bench Desk", slug=QUEUE_SLUG, email_address=desk,
                                 allow_email_submission=True, email_box_type="local",
                                 email_box_local_dir=str(folder / "mails"))
    logger = _logger()
    seeds = sorted((folder / "seeds").iterdir())
    ids = [extract_email_metadata(message=text, queue=queue, logger=logger).id
           for text in _texts(seeds)]
    found = {"seeds": len(seeds), "ticket_ids": ids, "tickets": Ticket.objects.count()}
    from django.db import connection  # noqa: PLC0415

    connection.close()  # the template file is copied next: nothing left open on it
    return found


class Writes:
    """Counts the statements that write (INSERT, UPDATE, DELETE): in Django's autocommit, each
    one outside ``atomic`` is a transaction of its own, so a commit and a sync."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.count += 1
        return execute(sql, params, many, context)


def run(folder: Path, database: Path, one_commit: bool) -> dict:
    """The timed run; ``one_commit`` wraps each mail in one transaction (``atomic``), which
    django-helpdesk's ``get_email`` does not do: to see what its several commits cost."""
    from contextlib import nullcontext  # noqa: PLC0415

    from django.core import mail  # noqa: PLC0415
    from django.db import connection, transaction  # noqa: PLC0415
    from helpdesk.email import extract_email_metadata  # noqa: PLC0415
    from helpdesk.models import FollowUp, FollowUpAttachment, Queue, Ticket  # noqa: PLC0415

    queue = Queue.objects.get(slug=QUEUE_SLUG)
    logger = _logger()
    mail.outbox = []
    # Warm-up: imports, templates, the first connection, as a running get_email has them.
    extract_email_metadata(message=_texts([folder / "warmup.eml"])[0], queue=queue,
                           logger=logger)
    tickets_before, followups_before = Ticket.objects.count(), FollowUp.objects.count()
    attachments_before = FollowUpAttachment.objects.count()
    mail.outbox = []
    texts = _texts(sorted((folder / "mails").iterdir()))
    ticket_ids, notifications, writes = [], 0, Writes()
    unit = transaction.atomic if one_commit else nullcontext
    with connection.execute_wrapper(writes):
        cpu, began = time.process_time(), time.perf_counter()
        for text in texts:
            with unit():
                ticket = extract_email_metadata(message=text, queue=queue, logger=logger)
            ticket_ids.append(ticket.id if ticket else None)
            notifications += len(mail.outbox)
            mail.outbox = []
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    with connection.cursor() as cursor:
        pragmas = {name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
                   for name in ("journal_mode", "synchronous")}
    return {"processed": len(texts), "wall": wall, "cpu": cpu, "ticket_ids": ticket_ids,
            "new_tickets": Ticket.objects.count() - tickets_before,
            "followups": FollowUp.objects.count() - followups_before,
            "attachments": FollowUpAttachment.objects.count() - attachments_before,
            "notifications": notifications, "pragmas": pragmas, "writes": writes.count,
            "versions": _versions()}


def _versions() -> dict:
    from importlib.metadata import version  # noqa: PLC0415

    return {"django-helpdesk": version("django-helpdesk"), "django": version("django"),
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}


def check() -> dict:
    """Can this interpreter run the peer at all (``bench.peer.peer_python`` asks)?"""
    import django  # noqa: F401, PLC0415
    import helpdesk  # noqa: F401, PLC0415

    return _versions()


def main(argv: list[str]) -> int:
    if argv[0] == "check":
        print(json.dumps(check()), flush=True)
        return 0
    mode, folder, database = argv[0], Path(argv[1]), Path(argv[2])
    _setup(folder, database)
    if mode == "template":
        found = template(folder, database, argv[3])
    else:
        found = run(folder, database, os.environ.get("PEER_BENCH_ONE_COMMIT") == "1")
    print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
