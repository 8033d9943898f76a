"""Recognise a delivery report (a bounce) and read which recipients failed.

A bounce is mail a server writes about another mail it could not deliver. Two questions, two
sources of evidence:

* **Is this mail a bounce at all?** Only what the *outer* mail says counts: a
  ``multipart/report; report-type=delivery-status`` (RFC 6522/3464), the null reverse path
  (``MAIL FROM:<>``, RFC 5321 §4.5.5), a system sender (MAILER-DAEMON, postmaster), or a
  subject a mail server writes ("Undelivered Mail Returned to Sender", "Unzustellbar: …").
  A customer who forwards a bounce or pastes one into their text writes a person's mail: their
  own From, their own subject (``Fwd: …``), and the bounce only inside it. So the body alone
  never makes a bounce.
* **Who failed?** flufl.bounce (Mailman's bounce library) reads the report: RFC 3464 DSNs first,
  then the formats of Exim, qmail, Postfix, Exchange, Yahoo, Lotus and a dozen others. It
  tells permanent failures from temporary ones (``Action: delayed``, "Warning: message …
  delayed").

A delivery-status report is a bounce even when no recipient can be read from it. A system
sender or a null reverse path is one when flufl.bounce reads failed recipients or the subject
says so; otherwise it is some other automatic mail (an auto-reply sent with ``MAIL FROM:<>``),
which ``postdesk.mail.automatic`` names. A server's subject alone ("Undeliverable: …") is a
bounce only with failed recipients to show for it: a person may write "Undelivered parcel".

The work is bounded: flufl.bounce reads at most ``MAX_SCAN_BYTES`` of the mail (the report
comes before the returned message), and a detector that fails is a bounce without recipients,
never an error.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass

from flufl.bounce import all_failures

from postdesk.mail.addresses import normalise_address
from postdesk.mail.automatic import empty_envelope_sender, system_sender
from postdesk.mail.model import ParsedMail

log = logging.getLogger(__name__)

MAX_SCAN_BYTES = 256 * 1024  # the report and its human part; the returned mail may follow
MAX_RECIPIENTS = 50  # a report naming more is cut (each is stored on the ticket's event)

# Subjects servers write on a bounce, in the languages of the big mail systems. Anchored at the
# start: a person's reply or forward ("Re: Undeliverable: …", "Fwd: …") never matches.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:"
    r"undeliver(?:able|ed)|undelivered mail returned to sender|returned mail|"
    r"mail delivery (?:failed|failure|system)|delivery (?:status notification|failure|failed|has failed|report)|"
    r"failure notice|message (?:not delivered|delivery failure)|could not send message|"
    r"delayed mail|warning: (?:could not send message|message .{0,60} delayed)|"
    r"non remis|non distribuable|[ée]chec de (?:la )?(?:remise|distribution)|message non d[ée]livr[ée]|"
    r"unzustellbar|nicht zustellbar|nicht zugestellt|"
    r"no se puede entregar|no entregado|non recapitabile|mancato recapito|"
    r"onbestelbaar|niet bezorgd|n[ãa]o entregue|"
    r"mail system error|undeliverable mail"
    r")",
    re.IGNORECASE,
)

# A warning that delivery is only late; some formats list the late recipients where others list
# failed ones, so the subject decides.
_DELAY_SUBJECT = re.compile(
    r"^\s*(?:warning:|delayed mail|delivery (?:status notification \(delay\)|delayed)|"
    r"message delayed|distribution diff[ée]r[ée]e|remise diff[ée]r[ée]e|zustellung verz[öo]gert)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Bounce:
    """A recognised bounce: why it is one, and the recipients it reports (normalised)."""

    evidence: str  # "delivery-status report", "sender MAILER-DAEMON", "bounce subject: …"
    permanent: tuple[str, ...]
    temporary: tuple[str, ...]

    @property
    def reason(self) -> str:
        """One line for the event and ``tickets show``: ``bounce (<evidence>): …``."""
        said = [f"failed {', '.join(self.permanent)}"] if self.permanent else []
        said += [f"delayed {', '.join(self.temporary)}"] if self.temporary else []
        return f"bounce ({self.evidence})" + (f": {'; '.join(said)}" if said else "")


def read_bounce(raw: bytes, mail: ParsedMail, envelope_from: str | None = None) -> Bounce | None:
    """The bounce ``raw`` is, or None when the outer mail gives no sign of one.

    ``envelope_from`` is the SMTP reverse path when known (``""`` for ``MAIL FROM:<>``).
    """
    evidence = outer_evidence(mail, envelope_from)
    if evidence is None:
        return None
    temporary, permanent = _failures(raw)
    if not (temporary or permanent):
        if evidence.startswith("bounce subject"):
            return None  # a person's subject that reads like one ("Undelivered parcel")
        if evidence != "delivery-status report" and not _BOUNCE_SUBJECT.match(mail.subject[:200]):
            return None  # an automatic mail from a system sender, but not a report of failure
    if permanent and _DELAY_SUBJECT.match(mail.subject[:200]):
        temporary, permanent = sorted({*temporary, *permanent}), []
    permanent_set = set(permanent)
    return Bounce(evidence, tuple(permanent)[:MAX_RECIPIENTS],
                  tuple(a for a in temporary if a not in permanent_set)[:MAX_RECIPIENTS])


def outer_evidence(mail: ParsedMail, envelope_from: str | None) -> str | None:
    """What in the mail's own headers says it may be a bounce, or None."""
    content_type = (mail.header("content-type") or "").lower()[:400]
    if content_type.startswith("multipart/report") and "delivery-status" in content_type:
        return "delivery-status report"
    if any(part.content_type == "message/delivery-status" for part in mail.attachments) \
            and content_type.startswith("multipart/report"):
        return "delivery-status report"
    system = system_sender(mail, envelope_from, "")  # the automatic rules' own reading
    if system:
        return system
    empty = empty_envelope_sender(mail, envelope_from, "")
    if empty:
        return empty
    found = _BOUNCE_SUBJECT.match(mail.subject[:200])
    if found:
        return f"bounce subject: {found.group(0).strip()[:60]}"
    return None


def _failures(raw: bytes) -> tuple[list[str], list[str]]:
    """(temporary, permanent) recipients flufl.bounce reads in the first MAX_SCAN_BYTES."""
    try:
        message = email.message_from_bytes(raw[:MAX_SCAN_BYTES], policy=email.policy.compat32)
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector choking on odd bytes: a bounce we cannot read
        log.debug("bounce report unreadable: %s", exc)
        return [], []
    return _addresses(temporary), _addresses(permanent)


def _addresses(found: frozenset[bytes]) -> list[str]:
    addresses = set()
    for item in found:
        address = normalise_address(item.decode("ascii", "replace").strip("<> "))
        if address and "@" in address:
            addresses.add(address)
    return sorted(addresses)
