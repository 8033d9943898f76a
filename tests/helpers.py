"""Small builders shared by tests: a real RFC 5322 mail as bytes, the outbound Maildir's mails."""

from __future__ import annotations

import email
import email.policy
import mailbox
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path


def make_mail(sender: str = "alice@example.com", subject: str = "Cannot log in",
              body: str = "Hello, the login page says error 500.\n", *,
              to: str = "support@desk.test", cc: str | None = None,
              message_id: str | None = "auto", in_reply_to: str | None = None,
              references: str | None = None, headers: dict | None = None,
              name: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    if message_id == "auto":
        message_id = make_msgid(domain="example.com")
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references or in_reply_to:
        msg["References"] = references or in_reply_to
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def outbound_mails(folder: Path) -> list[email.message.EmailMessage]:
    """Every mail in the outbound Maildir, oldest first."""
    box = mailbox.Maildir(folder, create=False)
    found = [(path.stat().st_mtime_ns, path.name, path) for sub in ("new", "cur")
             for path in (folder / sub).iterdir()] if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for _, _, p in sorted(found)] if box is not None else []
