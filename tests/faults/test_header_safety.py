"""Header and content safety: what a customer writes never becomes a header, a script, a path
or a log line, and secrets never reach the logs.

Outbound mails are read back from the outbox's MIME bytes (exactly what the sender delivers)
and their header block is compared line by line with the one of a harmless mail. HTML and
attachment names are checked where they are stored. The logs are those of the real
``postdesk serve``; passwords come from the environment and must not appear even at DEBUG,
customer addresses must not appear at INFO. The DEBUG test runs the default serve with its
processing child (the sender's relay login happens there); the IMAP pollers belong to the
SMTP edge, so the echoing IMAP server meets the edge alone; the INFO tests run the worker as a
thread of the one process (tests/acceptance/test_serve_logs.py shows the child's log redacted).
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import json
import re
import smtplib
import socket
import threading
from html.parser import HTMLParser

import pytest
from sqlalchemy import text

from postdesk.cli.views import ticket_document
from postdesk.gateway import steps
from postdesk.store import inbound, outbox, tickets
from tests.faults.support import Serve, Sink, figures, free_port, sqlite_app, wait_until
from tests import helpers
from tests.helpers import make_mail

AGENTS = '[[agents]]\naddress = "agent@desk.test"\nname = "Agent"\n[agent_auth]\nrequired = false\n'
ONE_PROCESS = "[worker]\nseparate_process = false\n"
EDGE_ONLY = ("--no-worker", "--no-sender", "--no-scheduler")


def deliver(app, raw: bytes, sender: str) -> int:
    return helpers.deliver(app, raw, sender, peer="127.0.0.1")


def header_block(raw: bytes) -> list[bytes]:
    """The raw header lines of a mail, up to the first empty line."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.split(b"\n")


def header_names(raw: bytes) -> list[str]:
    """Field names in order; a line that is neither a field nor a continuation fails."""
    names = []
    for line in header_block(raw):
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        assert colon and re.fullmatch(rb"[!-9;-~]+", name), f"not a header line: {line[:200]!r}"
        names.append(name.decode().lower())
    return names


def outbound(app, ticket_id: int) -> dict[str, bytes]:
    with app.db.reader() as session:
        rows = [r for r in outbox.listing(session) if r.ticket_id == ticket_id]
    return {r.template: r.raw for r in rows}


# --- header injection ---------------------------------------------------------------

INJECTIONS = {
    "CRLF in encoded subject": (
        b"Subject: =?utf-8?q?Hello=0D=0ABcc:_evil@evil.test=0D=0AX-Injected:_1?=\r\n",
        b"From: Eve <eve1@example.com>\r\n"),
    "CRLF in encoded display name": (
        b"Subject: Help\r\n",
        b"From: =?utf-8?q?Eve=0D=0ABcc:_evil@evil.test=0D=0A=0D=0Abody?= <eve2@example.com>\r\n"),
    "controls, NEL, line separators, bidi": (
        "Subject: =?utf-8?b?{}?=\r\n".format(base64.b64encode(
            "A\x00B\x0bC\x0cD\x85E\u2028F\u2029G\u202eH\x1bI\r\nBcc: evil@evil.test".encode()
        ).decode()).encode(),
        "From: =?utf-8?b?{}?= <eve3@example.com>\r\n".format(base64.b64encode(
            "Ev\x00e\u2028Bcc: evil@evil.test\x85X-Injected: 1".encode()).decode()).encode()),
    "bare CR in a raw header": (
        b"Subject: Hello\rBcc: evil@evil.test\r\n",
        b"From: Eve\rBcc: evil@evil.test <eve4@example.com>\r\n"),
}


def injected_mail(subject_line: bytes, from_line: bytes, message_id: str) -> bytes:
    return (from_line + b"To: support@desk.test\r\n" + subject_line
            + f"Message-ID: {message_id}\r\n".encode()
            + b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\nHello, I need help.\r\n")


def test_customer_text_never_reaches_outbound_headers(tmp_path):
    app = sqlite_app(tmp_path, AGENTS)
    deliver(app, make_mail(sender="alice@example.com", name="Alice", message_id="<control@x.test>"),
            "alice@example.com")
    control = {key: header_names(raw) for key, raw in outbound(app, 1).items()}
    assert set(control) == {"ticket_created", "agent_new_ticket"}, control
    report = {}
    for number, (name, (subject, sender)) in enumerate(INJECTIONS.items(), start=2):
        address = re.search(rb"<([^>]+)>", sender).group(1).decode()
        deliver(app, injected_mail(subject, sender, f"<inject-{number}@x.test>"), address)
        mails = outbound(app, number)
        report[name] = {key: header_names(raw) for key, raw in mails.items()}
        for key, raw in mails.items():
            names = header_names(raw)
            assert names == control[key], f"{name}/{key}: {names} != {control[key]}"
            assert "bcc" not in names and "x-injected" not in names
            assert all(len(line) <= 998 for line in header_block(raw)), name
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            expected_to = address if key == "ticket_created" else "agent@desk.test"
            assert [a.addr_spec for a in parsed["To"].addresses] == [expected_to], (name, key)
            assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    print(figures("outbound headers under injection", {"control": control, **report}))


# --- HTML -------------------------------------------------------------------------------

HOSTILE_HTML = """<html><head><style>body{background:url(javascript:alert(0))}</style>
<meta http-equiv="refresh" content="0;url=javascript:alert(1)"><base href="javascript:alert(2)//">
</head><body onload="alert(3)"><p>Bonjour, voici le problème.</p>
<script>alert(4)</script><img src=x onerror="alert(5)"><svg onload=alert(6)><circle/></svg>
<a href="javascript:alert(7)">a</a><a href="JaVaScRiPt:alert(8)">b</a>
<a href="jav&#x09;ascript:alert(9)">c</a><a href="&#106;avascript:alert(10)">d</a>
<a href=" javascript:alert(11)">e</a><iframe src="javascript:alert(12)"></iframe>
<object data="x.swf"></object><embed src="x.swf"><form action="https://evil.test"><input></form>
<img src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxMyk8L3NjcmlwdD4=">
<math><mtext><table><mglyph><style><img src=x onerror=alert(14)></style></mglyph></table></mtext></math>
<div style="background-image: url(javascript:alert(15))">f</div>
<a href="https://example.com/ok">safe link</a></body></html>"""
FORBIDDEN_TAGS = {"script", "style", "iframe", "object", "embed", "form", "input", "meta", "base",
                  "svg", "math", "link", "frame", "frameset", "applet"}
SAFE_SCHEMES = ("http:", "https:", "mailto:", "tel:", "cid:")


class Audit(HTMLParser):
    """Collects every unsafe tag, event attribute and URL in an HTML text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.unsafe: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "meta" and not any(name == "http-equiv" for name, _ in attrs):
            return  # a template's own <meta charset> / viewport
        if tag in FORBIDDEN_TAGS:
            self.unsafe.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.unsafe.append(f"{tag} {name}")
            if name in ("href", "src", "action", "data", "formaction", "background", "xlink:href"):
                url = re.sub(r"[\x00-\x20]", "", html.unescape(value or "")).lower()
                if ":" in url.split("/")[0] and not url.startswith(SAFE_SCHEMES):
                    self.unsafe.append(f"{tag} {name}={value!r}")
            if name == "style" and "javascript:" in (value or "").lower():
                self.unsafe.append(f"{tag} style")


def unsafe_html(text: str) -> list[str]:
    audit = Audit()
    audit.feed(text or "")
    return audit.unsafe + (["javascript:"] if "javascript:" in (text or "").lower() else [])


def test_hostile_html_is_sanitised_where_stored_and_shown(tmp_path):
    app = sqlite_app(tmp_path, AGENTS)
    raw = make_mail(sender="carla@example.com", subject="Paiement", message_id="<html@x.test>")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    msg.add_alternative(HOSTILE_HTML, subtype="html")
    deliver(app, msg.as_bytes(policy=email.policy.SMTP), "carla@example.com")
    with app.db.reader() as session:
        [incoming] = [m for m in tickets.messages(session, 1) if m.direction == "in"]
        document = json.dumps(ticket_document(session, tickets.get(session, 1), app.tags),
                              default=str)
    shown = [p.get_content() for raw_out in outbound(app, 1).values()
             for p in email.message_from_bytes(raw_out, policy=email.policy.default).walk()
             if p.get_content_type() == "text/html"]
    found = {"stored Message.html": unsafe_html(incoming.html),
             "tickets show --json": [s for s in ("<script", "onerror", "javascript:")
                                     if s in document.lower()],
             "outbound HTML": [u for text in shown for u in unsafe_html(text)]}
    print(figures("hostile HTML", {**found, "kept text": "Bonjour, voici le problème." in
                                   (incoming.html or "")}))
    assert incoming.html and "voici le problème" in incoming.html
    assert "https://example.com/ok" in incoming.html
    assert found == {"stored Message.html": [], "tickets show --json": [], "outbound HTML": []}


# --- attachment names -------------------------------------------------------------------

HOSTILE_NAMES = [
    'filename="../../etc/passwd"', 'filename="..\\\\..\\\\windows\\\\win.ini"',
    'filename="/etc/shadow"', "filename*=utf-8''..%2F..%2Fetc%2Fcron.d%2Fx.txt",
    'filename="=?utf-8?q?=2E=2E=2F=2E=2E=2Fetc=2Fhosts?="', 'filename="a\r\n b.txt"',
    'filename="x\x00y.txt"', 'filename="\u202etxt.exe"', 'filename=".htaccess"',
    'filename="' + "n" * 400 + '.txt"', 'filename="CON"', 'filename="   "',
    'filename="evil\x1b[31m.txt"', 'filename="tab\there.txt"',
]


def attachment_mail(names: list[str]) -> bytes:
    parts = [b"From: dan@example.com\r\nTo: support@desk.test\r\nSubject: files\r\n"
             b"Message-ID: <names@x.test>\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
             b"Content-Type: text/plain\r\n\r\nsee files\r\n"]
    for name in names:
        parts.append(b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
                     + name.encode("utf-8") + b"\r\n\r\nplain text\r\n")
    return b"".join(parts) + b"--b--\r\n"


def test_attachment_names_are_sanitised(tmp_path):
    blobs = tmp_path / "blobs"
    app = sqlite_app(tmp_path, f'[store]\nblob_dir = "{blobs}"\n[attachments]\nmax_files = 50\n'
                               'check_content = false\ntypes = ["txt", "ini", "exe", "bin", ""]\n')
    deliver(app, attachment_mail(HOSTILE_NAMES), "dan@example.com")
    with app.db.reader() as session:
        [incoming] = [m for m in tickets.messages(session, 1) if m.direction == "in"]
        names = [a.filename for a in tickets.attachments(session, [incoming.id])]
    bad = [n for n in names if not n or "/" in n or "\\" in n or n.startswith(".")
           or len(n) > 255 or any(not c.isprintable() for c in n)]
    outside = [str(p) for p in tmp_path.rglob("*") if p.name in ("passwd", "shadow", "hosts",
                                                                  "win.ini", "x.txt")]
    print(figures("attachment names", {"stored": names, "unsafe": bad, "files outside": outside}))
    assert len(names) == len(HOSTILE_NAMES), names
    assert bad == [] and outside == []


# --- secrets and addresses in the logs --------------------------------------------------

RELAY_PASSWORD = "Relay-S3cret-9f8e7d"
IMAP_PASSWORD = "Imap-S3cret-1a2b3c"


class RefusingImap:
    """An IMAP server that refuses every LOGIN (and, if asked, echoes the credentials back)."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.port = free_port()
        self.logins = 0
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
            for line in reader:
                tag, _, rest = line.decode(errors="replace").strip().partition(" ")
                command = rest.split(" ", 1)[0].upper()
                if command == "CAPABILITY":
                    conn.sendall(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    self.logins += 1
                    said = f"refused: {rest}" if self.echo else "Authentication failed."
                    conn.sendall(f"{tag} NO [AUTHENTICATIONFAILED] {said}\r\n".encode())
                elif command == "LOGOUT":
                    conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                    return
                else:
                    conn.sendall(f"{tag} BAD unknown\r\n".encode())

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def secrets_desk(tmp_path, sink: Sink, imap: RefusingImap) -> Serve:
    db_url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    return Serve(tmp_path, db_url, f'''
[outbound]
transport = "smtp"
host = "127.0.0.1"
port = {sink.port}
username = "desk"
password_env = "POSTDESK_TEST_RELAY_PASSWORD"
timeout_seconds = 5
retry_base_seconds = 0.2
retry_max_seconds = 0.5
poll_seconds = 0.2

[[imap]]
name = "shared"
host = "127.0.0.1"
port = {imap.port}
security = "none"
username = "desk@imap.test"
password_env = "POSTDESK_TEST_IMAP_PASSWORD"
idle = false
poll_seconds = 0.5
''', env={"POSTDESK_TEST_RELAY_PASSWORD": RELAY_PASSWORD,
          "POSTDESK_TEST_IMAP_PASSWORD": IMAP_PASSWORD})


def test_passwords_never_reach_logs_or_outbox(tmp_path):
    sink = Sink(auth_password="another-password")  # the relay refuses ours: the failing path
    imap = RefusingImap()
    serve = secrets_desk(tmp_path, sink, imap)
    try:
        sink.start()
        serve.run("init")
        serve.start(log_level="DEBUG")
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=10) as smtp:
            smtp.sendmail("erin@example.com", ["support@desk.test"], make_mail(sender="erin@example.com"))
        wait_until(lambda: sink.logins and imap.logins >= 2 and "failed outbox=" in serve.log_text(),
                   20, "a refused relay login and two refused IMAP logins", log=serve.log)
        listing = serve.run("outbox", "list", "--json").stdout.decode()
        serve.stop()
        log = serve.log_text()
        result = {"relay logins tried": len(sink.logins), "IMAP logins tried": imap.logins,
                  "log lines (DEBUG)": log.count("\n"),
                  "relay password in log": RELAY_PASSWORD in log,
                  "IMAP password in log": IMAP_PASSWORD in log,
                  "relay password in outbox": RELAY_PASSWORD in listing}
        print(figures("secrets", result))
        assert not (result["relay password in log"] or result["IMAP password in log"]
                    or result["relay password in outbox"]), result
        assert sink.logins == ["desk"]
    finally:
        serve.kill()
        sink.stop()
        imap.close()


def test_imap_password_echoed_by_the_server_is_not_logged(tmp_path):
    sink = Sink()
    imap = RefusingImap(echo=True)
    serve = secrets_desk(tmp_path, sink, imap)
    try:
        sink.start()
        serve.run("init")
        serve.start(*EDGE_ONLY)  # INFO; the IMAP pollers run in the edge's process
        wait_until(lambda: imap.logins >= 2, 20, "two refused IMAP logins", log=serve.log)
        serve.stop()
        lines = [line for line in serve.log_text().splitlines() if IMAP_PASSWORD in line]
        print(figures("IMAP server echoing the password", {"log lines with it": lines}))
        assert lines == []
    finally:
        serve.kill()
        sink.stop()
        imap.close()


CUSTOMERS = ["zoe.martin@example.org", "yann.le-goff@client.example"]


def test_info_log_holds_no_customer_address(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, db_url,
                  AGENTS.replace("required = false", "required = true") + ONE_PROCESS)
    try:
        serve.run("init")
        serve.start()
        zoe, yann = CUSTOMERS
        first = make_mail(sender=zoe, name="Zoé Martin", message_id="<z1@example.org>",
                          cc=yann)
        mails = [(zoe, first), (zoe, first),  # a duplicate
                 (yann, make_mail(sender=yann, subject="Re: [#1] Cannot log in",
                                  message_id="<y1@client.example>")),
                 (zoe, make_mail(sender=zoe, subject="Absence du bureau",
                                 headers={"Auto-Submitted": "auto-replied"})),
                 (zoe, make_mail(sender=zoe, subject="Urgent", body="ticket #1 again\n"))]
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=10) as smtp:
            for sender, raw in mails:
                smtp.sendmail(sender, ["support@desk.test"], raw)
            smtp.mail(zoe)
            assert smtp.rcpt("someone@elsewhere.test")[0] == 550
            smtp.rset()
        wait_until(lambda: len(list((tmp_path / "outbound" / "new").glob("*"))) >= 3, 60,
                   "acknowledgements", log=serve.log)
        serve.stop()
        log = serve.log_text()
        found = {a: log.lower().count(a) for a in CUSTOMERS}
        print(figures("customer addresses in the INFO log", {**found, "log lines": log.count("\n")}))
        assert found == {a: 0 for a in CUSTOMERS}, [l for l in log.splitlines()
                                                     if any(a in l.lower() for a in CUSTOMERS)]
    finally:
        serve.kill()


def test_undecodable_subject_is_not_logged(tmp_path):
    """mail-parser logs each header it cannot decode, raw and unbounded, at ERROR."""
    db_url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, db_url, ONE_PROCESS)
    try:
        serve.run("init")
        serve.start()
        raw = make_mail(sender="zoe.martin@example.org").replace(
            b"Subject: Cannot log in",
            b"Subject: =?utf-8?B?!!!?= please call zoe.martin@example.org " + b"x" * 5000)
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=10) as smtp:
            smtp.sendmail("zoe.martin@example.org", ["support@desk.test"], raw)
        wait_until(lambda: "processed inbound=1" in serve.log_text(), 60, "processing",
                   log=serve.log)
        serve.stop()
        log = serve.log_text()
        longest = max(len(line) for line in log.splitlines())
        print(figures("undecodable subject", {"address in log": "zoe.martin@example.org" in log,
                                              "longest log line": longest}))
        assert "zoe.martin@example.org" not in log
        assert longest < 2000
    finally:
        serve.kill()


def test_relay_refusal_does_not_log_the_customer_address(tmp_path, caplog):
    sink = Sink()

    async def refuse(server, session, envelope, address, options):
        return "550 5.1.1 <%s>: no such user" % address if "zoe" in address else "250 OK"

    sink.handle_RCPT = refuse
    app = sqlite_app(tmp_path, f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\n'
                               f'port = {sink.port}\nretry_base_seconds = 0\nmax_attempts = 2\n')
    try:
        sink.start()
        caplog.set_level("INFO")
        deliver(app, make_mail(sender="zoe.martin@example.org"), "zoe.martin@example.org")
        app.sender().send_until_idle()
        with app.db.reader() as session:
            rows = [(r.status, r.last_error) for r in outbox.listing(session)]
        leaked = [r.getMessage() for r in caplog.records  # postdesk's, not the sink's own log
                  if r.name.startswith("postdesk") and "zoe.martin" in r.getMessage()]
        print(figures("relay refusal", {"outbox": rows, "log lines with the address": leaked}))
        assert rows and rows[0][0] == "failed"
        assert leaked == []
    finally:
        sink.stop()
        app.db.dispose()


def test_quarantine_reason_holds_no_sql_parameters(tmp_path, caplog, monkeypatch):
    app = sqlite_app(tmp_path)
    record = steps.REGISTRY["record"]

    def record_then_fail(ctx):  # any database error in a step, here a unique key violation
        record(ctx)
        ctx.session.execute(text("INSERT INTO contact (address, name, created_at) "
                                 "VALUES (:address, '', :now)"),
                            {"address": ctx.mail.from_addr, "now": ctx.now})

    monkeypatch.setitem(steps.REGISTRY, "record", record_then_fail)
    caplog.set_level("INFO")
    stored = deliver(app, make_mail(sender="zoe.martin@example.org", body="my private words\n"),
                     "zoe.martin@example.org")
    with app.db.reader() as session:
        row = inbound.get(session, stored)
        status, error = row.status, row.error or ""
    logged = "\n".join(r.getMessage() for r in caplog.records)
    result = {"status": status, "reason": error[:300],
              "address in reason": "zoe.martin" in error, "address in log": "zoe.martin" in logged}
    print(figures("database error while processing", result))
    app.db.dispose()
    assert status == "quarantined" and "IntegrityError" in error, result
    assert not result["address in reason"] and not result["address in log"], result
