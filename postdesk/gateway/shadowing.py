"""A Message-ID already recorded from another sender: a copy, or a forgery shadowing a mail?

The dedupe step discards a mail whose Message-ID the desk already holds: mail is delivered
twice, and the second copy must add nothing. But a Message-ID is chosen by the sender, so a
forger can reuse the one of a genuine mail, before it (the genuine mail would then be discarded)
or after it. A copy of the same mail has the same sender; a mail from another sender under
a known Message-ID is neither silently discarded nor recorded: it is quarantined with the
reason, for a person to read (``postdesk quarantine``).
"""

from __future__ import annotations

from postdesk.gateway.context import Context
from postdesk.mail.parse import parse
from postdesk.store import inbound


def other_sender(ctx: Context, earlier: inbound.EarlierCopy) -> str | None:
    """Why ``earlier`` (holding this mail's Message-ID) is not a copy of it, or None."""
    sender = ctx.mail.from_addr or ""
    if earlier.kind == "message":
        if earlier.direction == "out" and ctx.desk.is_own(sender):
            return None  # the desk's own mail coming back (a Sent folder, a loop)
        known = earlier.from_addr or ""
        where = f"message {earlier.id} on ticket #{earlier.ticket_id}"
    else:
        known = _sender_of_inbound(ctx, earlier.id)
        where = f"inbound {earlier.id}"
    if sender == known:
        return None
    return (f"Message-ID {ctx.mail.message_id[:200]} already belongs to {where} from another "
            f"sender ({known or 'no From'}, this one {sender or 'no From'}): a forgery reusing "
            "it, or a copy rewritten on the way; kept here for a person to check")


def _sender_of_inbound(ctx: Context, inbound_id: int) -> str:
    """The From address of an earlier stored mail, read from its header block."""
    row = inbound.get(ctx.session, inbound_id)
    raw = inbound.raw_of(row, ctx.desk.blobs, ctx.session) if row is not None else b""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return parse(bytes(raw[:end]) + b"\r\n\r\n").from_addr or ""
