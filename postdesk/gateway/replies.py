"""Every SMTP/LMTP reply postdesk sends, named, with its RFC 3463 enhanced status code.

A reply is a small frozen value (``Reply(code, enhanced, text)``) whose ``str()`` is the wire line
without CRLF; ``format()`` fills placeholders in the text. The names follow one convention that
``tests/unit/test_replies.py`` enforces: ``R<code>_<WHAT>``, the enhanced code's class equals the
reply's class (``R451_…`` ⇒ ``4.x.x``), and only 2xx, 4xx and 5xx replies exist here. Replies that
aiosmtpd sends by itself and postdesk rewrites are listed in ``postdesk.gateway.smtp``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"

    def format(self, **values: object) -> str:
        """The wire line with ``{name}`` placeholders in the text filled in."""
        return f"{self.code} {self.enhanced} {self.text.format(**values)}"


R250_OK = Reply(250, "2.0.0", "OK")
R250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
R250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
R250_QUEUED = Reply(250, "2.0.0", "Queued as {id}")

R421_SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
R421_TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", "Too many connections, try again later")
R451_TRY_LATER = Reply(451, "4.3.0", "Local error, try again later")
R452_NO_STORAGE = Reply(452, "4.3.1", "Insufficient system storage, try again later")

R503_NEED_MAIL = Reply(503, "5.5.1", "Bad sequence of commands: need MAIL first")
R503_NEED_RCPT = Reply(503, "5.5.1", "Bad sequence of commands: need RCPT first")
R503_NESTED_MAIL = Reply(503, "5.5.1", "Bad sequence of commands: nested MAIL")
R550_UNKNOWN_MAILBOX = Reply(550, "5.1.1", "No such mailbox: relay denied, domain not served here")
R552_TOO_BIG = Reply(552, "5.3.4", "Message too big, the limit is {max_bytes} bytes")
R553_BAD_SENDER = Reply(553, "5.1.7", "Malformed sender address")
R553_BAD_RECIPIENT = Reply(553, "5.1.3", "Malformed recipient address")
R554_UNUSABLE = Reply(554, "5.6.0", "Message content is not a usable mail")
R554_LINE_TOO_LONG = Reply(554, "5.6.0", "Message has a line longer than {max_line} bytes")


def all_replies() -> dict[str, Reply]:
    """Every named reply of this module by its name (for tests and documentation)."""
    return {name: value for name, value in globals().items() if isinstance(value, Reply)}
