"""Loops and floods: two desks that answer each other stop, one sender cannot flood a desk,
and attachments follow the policy of seed 004.

The two desks are real postdesk instances (own SQLite database, own outbound Maildir, own
tag); each round, the mails desk A's sender delivered are piped into desk B's intake (as
``postdesk ingest`` would) and the other way round, for a bounded number of rounds. The first
loop keeps every header; the second goes through a forwarder that strips everything that
marks a mail as automatic or threaded (the worst case), so only the rate limits can stop it.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import timedelta
from pathlib import Path

from postdesk.gateway.worker import Worker
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound, outbox, tickets
from postdesk.store.clock import utcnow
from tests.faults.support import figures, sqlite_app
from tests.helpers import make_mail

MAX_ROUNDS = 40
LOOP_HEADERS = ("Auto-Submitted", "Precedence", "X-Auto-Response-Suppress", "X-Postdesk-Ticket",
                "In-Reply-To", "References", "Thread-Index", "Thread-Topic")


class Desk:
    """One postdesk instance in its own folder; ``take`` pipes mails in, returns what it sent."""

    def __init__(self, folder: Path, name: str, tag: str) -> None:
        folder.mkdir()
        self.address = f"support@{name}.test"
        self.app = sqlite_app(folder, environ={
            "POSTDESK_DESK__NAME": f"Desk {name}", "POSTDESK_DESK__ADDRESS": self.address,
            "POSTDESK_DESK__TAG": tag, "POSTDESK_DESK__LOCALE": "en"})
        self.outbound = folder / "outbound"
        self.seen: set[str] = set()
        self.sent = 0

    def take(self, mails: list[bytes]) -> list[bytes]:
        envelope = Envelope("", (self.address,), "ingest", None)
        for raw in mails:
            self.app.intake().store(raw, envelope)
        self.app.worker().process_until_idle()
        self.app.sender().send_until_idle()
        return self.new_outbound()

    def new_outbound(self) -> list[bytes]:
        fresh = []
        for path in sorted((self.outbound / "new").glob("*")) if self.outbound.exists() else []:
            if path.name not in self.seen:
                self.seen.add(path.name)
                fresh.append(path.read_bytes())
        self.sent += len(fresh)
        return fresh

    def statuses(self) -> dict:
        with self.app.db.reader() as session:
            return inbound.counts(session)


def strip_loop_evidence(raw: bytes) -> bytes:
    """A forwarder that drops every automatic/threading header and every ticket tag."""
    msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
    for name in LOOP_HEADERS:
        del msg[name]
    subject = re.sub(r"\[[^\]]*#\s*\d+\s*\]", "", str(msg["Subject"] or "")).strip()
    del msg["Subject"]
    msg["Subject"] = subject or "(no subject)"
    return msg.as_bytes()


def play(tmp_path: Path, relay) -> dict:
    a = Desk(tmp_path / "a", "a", "[A #{id}]")
    b = Desk(tmp_path / "b", "b", "[B #{id}]")
    opening = make_mail(sender=b.address, to=a.address, subject="Hello from desk B",
                        message_id="<opening@b.test>")
    to_b = a.take([opening])
    rounds = 1
    while to_b and rounds < MAX_ROUNDS:
        to_a = b.take([relay(m) for m in to_b])
        to_b = a.take([relay(m) for m in to_a]) if to_a else []
        rounds += 1
    result = {"rounds": rounds, "stopped by itself": not to_b,
              "mails sent by A": a.sent, "mails sent by B": b.sent,
              "A inbound": a.statuses(), "B inbound": b.statuses()}
    for desk in (a, b):
        desk.app.db.dispose()
    return result


def test_two_desks_acknowledging_each_other_stop_at_once(tmp_path):
    result = play(tmp_path, relay=lambda raw: raw)
    print(figures("two desks, headers intact", result))
    assert result["stopped by itself"], result
    assert result["mails sent by A"] == 1 and result["mails sent by B"] == 0, result


def test_two_desks_behind_a_header_stripping_forwarder_stop_at_the_rate_limit(tmp_path):
    result = play(tmp_path, relay=strip_loop_evidence)
    print(figures("two desks, loop evidence stripped", result))
    limit = 10  # [limits] auto_replies_per_address_per_hour (default)
    assert result["stopped by itself"], result
    assert result["mails sent by A"] <= limit and result["mails sent by B"] <= limit, result


# --- inbound flood (acceptance tests of [limits] inbound_per_sender / inbound_window) ----

def flood(app, sender: str, count: int, start: int = 0, clock=None) -> list[int]:
    """Store and process ``count`` mails from ``sender``, one by one; ``clock`` dates the
    worker's processing (the flood window counts from it), else the wall clock."""
    worker = app.worker() if clock is None else Worker(app.db, app.desk, clock=clock)
    ids = []
    for i in range(start, start + count):
        ids.append(app.intake().store(
            make_mail(sender=sender, subject=f"Question {i}", message_id=f"<flood-{i}-{sender}>"),
            Envelope(sender, ("support@desk.test",), "smtp", "127.0.0.1")))
        worker.process_until_idle()
    return ids


def fates(app, ids: list[int]) -> list[tuple[str, str]]:
    with app.db.reader() as session:
        rows = [inbound.get(session, i) for i in ids]
        return [(r.status, r.error or r.outcome or "") for r in rows]


def test_inbound_flood_from_one_sender_is_quarantined(tmp_path):
    """Defaults: more than 20 mails in 1 h from one sender; the 21st on is quarantined."""
    app = sqlite_app(tmp_path)
    flooded = fates(app, flood(app, "flood@example.com", 25))
    other = fates(app, flood(app, "calm@example.com", 1))
    with app.db.reader() as session:
        opened = [t for t in tickets.list_tickets(session, limit=1000)
                  if t.requester == "flood@example.com"]
        acks = [r for r in outbox.listing(session, limit=1000)
                if json.loads(r.rcpts) == ["flood@example.com"]]
    result = {"statuses": [s for s, _ in flooded], "reason of the 21st": flooded[20][1],
              "tickets opened for the flooder": len(opened),
              "acknowledgements to the flooder": len(acks), "other sender": other[0][0]}
    print(figures("inbound flood", result))
    assert [s for s, _ in flooded[:20]] == ["processed"] * 20, result
    assert [s for s, _ in flooded[20:]] == ["quarantined"] * 5, result
    assert all("flood" in reason.lower() for _, reason in flooded[20:]), result
    assert len(opened) == 20, result
    assert len(acks) <= 10, result  # the automatic-reply limit still holds
    assert other[0][0] == "processed", result


def test_inbound_flood_window_slides(tmp_path):
    app = sqlite_app(tmp_path, '[limits]\ninbound_per_sender = 3\ninbound_window = "2s"\n')
    first = fates(app, flood(app, "burst@example.com", 4))
    later_clock = lambda: utcnow() + timedelta(seconds=2.2)  # noqa: E731 - the window has passed
    later = fates(app, flood(app, "burst@example.com", 1, start=10, clock=later_clock))
    result = {"burst": [s for s, _ in first], "after the window": later[0][0]}
    print(figures("inbound flood window", result))
    assert [s for s, _ in first] == ["processed"] * 3 + ["quarantined"], result
    assert later[0][0] == "processed", result


# --- attachment policy (acceptance tests of [attachments], seed 004) --------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 64
JPG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb") + b"\1" * 64 + b"\xff\xd9"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 200 + b"PE\0\0"
DOCX = b"PK\x03\x04\x14\x00\x06\x00" + b"\0" * 22 + b"[Content_Types].xml" + b"\0" * 200


def files_mail(files: list[tuple[str, str, bytes]]) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = "Frank <frank@example.com>"
    msg["To"] = "support@desk.test"
    msg["Subject"] = "Files for my request"
    msg["Message-ID"] = "<files@example.com>"
    msg["Content-Language"] = "en"
    msg.set_content("Hello, here are the files you asked for.\n")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


SEED_004_FILES = [
    ("report.pdf", "application/pdf", PDF + b"%" * 10_000),            # kept
    ("data.csv", "text/csv", b"a,b\n1,2\n"),                           # kept
    ("screenshot.png", "image/png", PNG),                              # kept
    ("big.pdf", "application/pdf", PDF + b"%" * 600_000),              # size: over 500 KB
    ("tool.exe", "application/octet-stream", EXE),                     # type: not listed
    ("invoice.pdf", "application/pdf", EXE),                           # type: content is no PDF
    ("notes.txt", "text/plain", b"call me back\n"),                    # kept
    ("photo.jpg", "image/jpeg", JPG),                                  # kept (5th)
    ("extra.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     DOCX),                                                            # count: a 6th good file
]
SEED_004_REJECTED = {"big.pdf": "size", "tool.exe": "type", "invoice.pdf": "type",
                     "extra.docx": "count"}


def policy_outcome(app) -> dict:
    with app.db.reader() as session:
        [incoming] = [m for m in tickets.messages(session, 1)
                      if m.direction == "in" and m.kind == "customer"]
        rows = tickets.attachments(session, [incoming.id])
        notices = [r for r in outbox.listing(session) if r.template == "attachment_rejected"]
    texts = [email.message_from_bytes(r.raw, policy=email.policy.default).get_body(("plain",))
             .get_content() for r in notices]
    return {"kept": sorted(a.filename for a in rows if not a.rejected),
            "rejected": {a.filename: a.rejected for a in rows if a.rejected},
            "rejected rows without bytes": all(a.data is None and a.blob_path is None
                                               for a in rows if a.rejected),
            "notices": [json.loads(r.rcpts) for r in notices], "notice text": texts}


def test_attachment_policy_with_the_defaults(tmp_path):
    """[attachments] max_files = 5, max_bytes = "500KB", types = CSV TSV XLSX DOC DOCX PDF TXT
    JPG PNG GIF MP4 MOV HAR, checked from the content: in MIME order, a file breaking the type or
    size rule is refused with that rule; the first five good files are kept, later good ones
    are refused with rule ``count``. Refused files stay listed on the message (rule, no bytes);
    one ``attachment_rejected`` mail tells the sender each refused file."""
    app = sqlite_app(tmp_path)
    app.intake().store(files_mail(SEED_004_FILES),
                       Envelope("frank@example.com", ("support@desk.test",), "smtp", "127.0.0.1"))
    app.worker().process_until_idle()
    result = policy_outcome(app)
    print(figures("attachment policy (defaults)", result))
    assert result["kept"] == sorted(["report.pdf", "data.csv", "screenshot.png", "notes.txt",
                                     "photo.jpg"]), result
    assert result["rejected"] == SEED_004_REJECTED, result
    assert result["rejected rows without bytes"], result
    assert result["notices"] == [["frank@example.com"]], result
    text = result["notice text"][0]
    for name in SEED_004_REJECTED:
        assert name in text, (name, text)
    for name in result["kept"]:
        assert name not in text, (name, text)


def test_attachment_policy_follows_its_settings(tmp_path):
    app = sqlite_app(tmp_path, '[attachments]\nmax_files = 2\nmax_bytes = "1KB"\n'
                               'types = ["txt", "exe"]\ncheck_content = false\n')
    files = [("a.txt", "text/plain", b"1"), ("tool.exe", "application/octet-stream", EXE),
             ("report.pdf", "application/pdf", PDF), ("b.txt", "text/plain", b"x" * 2000),
             ("c.txt", "text/plain", b"3")]
    app.intake().store(files_mail(files),
                       Envelope("frank@example.com", ("support@desk.test",), "smtp", "127.0.0.1"))
    app.worker().process_until_idle()
    result = policy_outcome(app)
    print(figures("attachment policy (settings)", result))
    assert result["kept"] == ["a.txt", "tool.exe"], result
    assert result["rejected"] == {"report.pdf": "type", "b.txt": "size", "c.txt": "count"}, result


def test_automatic_mails_per_ticket_are_limited(tmp_path):
    """[limits] auto_replies_per_ticket within auto_replies_ticket_window: a customer who keeps
    replying with refused files gets at most that many automatic mails on the ticket."""
    app = sqlite_app(tmp_path, "[limits]\nauto_replies_per_ticket = 3\n"
                               'auto_replies_ticket_window = "10m"\n'
                               "auto_replies_per_address_per_hour = 100\n")
    envelope = Envelope("gina@example.com", ("support@desk.test",), "smtp", "127.0.0.1")
    app.intake().store(make_mail(sender="gina@example.com", message_id="<t0@example.com>"), envelope)
    for i in range(1, 9):
        msg = email.message_from_bytes(make_mail(sender="gina@example.com", subject="Re: [#1] files",
                                                 message_id=f"<t{i}@example.com>"),
                                       policy=email.policy.default)
        msg.add_attachment(EXE, maintype="application", subtype="octet-stream", filename="tool.exe")
        app.intake().store(msg.as_bytes(policy=email.policy.SMTP), envelope)
    app.worker().process_until_idle()
    with app.db.reader() as session:
        automatic = [r.template for r in outbox.listing(session)
                     if r.automatic and json.loads(r.rcpts) == ["gina@example.com"]]
        suppressed = [e for e in tickets.events(session, 1) if e.kind == "notification_suppressed"]
    result = {"automatic mails to the customer": automatic,
              "suppressed": len(suppressed),
              "reason": json.loads(suppressed[0].data)["reason"] if suppressed else None}
    print(figures("automatic mails per ticket", result))
    assert len(automatic) == 3, result
    assert len(suppressed) == 6 and "ticket" in result["reason"], result
