"""Read what the trusted receiving server said about a mail: its Authentication-Results.

RFC 8601: the server that receives a mail from the outside adds ``Authentication-Results``
headers naming itself (the authserv-id) at the top, and must remove any it did not write that
bear its name. So only the topmost block of headers of the trusted server counts: the first
``Authentication-Results`` field with the trusted authserv-id and the fields of that server
right under it, with no other field between. Anything further down was in the mail before it
reached that server and may be written by the sender. The block is read with ``authres``;
when any of its fields cannot be read, the block says nothing that can be believed, and the
reason is kept (a mail whose verdict cannot be read is never an agent's, and cannot close a
ticket). Values are read as written: encoded-words are never decoded here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import authres

from postdesk.mail.fields import MAX_HEADER_VALUE
from postdesk.mail.headers import clean_header_value
from postdesk.mail.model import ParsedMail

FIELD = "authentication-results"
# authserv-id: after optional comments, a token or a quoted string (RFC 8601 section 2.2).
_LEADING_ID = re.compile(r'\s*(?:\((?:[^()\\]|\\.)*\)\s*)*("(?:[^"\\]|\\.)*"|[^\s;()"]+)')


@dataclass(frozen=True)
class TrustedResults:
    """The topmost block of the trusted server's results; ``fields`` 0 when it wrote none."""

    authserv_id: str
    fields: int = 0  # how many Authentication-Results fields the block has
    results: tuple = ()  # authres results of every field of the block, in order
    unreadable: str | None = None  # why the block cannot be believed; then ``results`` is ()

    @property
    def found(self) -> bool:
        return self.fields > 0


def trusted_results(mail: ParsedMail, authserv_id: str) -> TrustedResults:
    """The results of the topmost block of ``authserv_id``'s Authentication-Results."""
    wanted = authserv_id.strip().lower()
    block: list[tuple[object | None, str | None]] = []
    for name, value in mail.raw_fields:
        reading = _read(value) if name == FIELD else None
        if reading is not None and reading[0] == wanted and wanted:
            block.append(reading[1:])
        elif block:
            break  # the block ends at the first other field
    if not block:
        return TrustedResults(authserv_id)
    problems = [problem for _, problem in block if problem]
    if problems:
        return TrustedResults(authserv_id, len(block), (), problems[0])
    return TrustedResults(authserv_id, len(block), tuple(r for h, _ in block for r in h.results))


def _read(value: str) -> tuple[str, object | None, str | None]:
    """``(authserv-id lower-case, authres header or None, why it cannot be read or None)``."""
    if len(value) > MAX_HEADER_VALUE:
        return _leading_id(value), None, f"longer than {MAX_HEADER_VALUE} characters"
    unfolded = " ".join(value.split())
    try:
        header = authres.AuthenticationResultsHeader.parse_value(unfolded)
    except Exception as error:  # noqa: BLE001 - authres raises its own errors, and RecursionError
        return _leading_id(unfolded), None, clean_header_value(f"{type(error).__name__}: {error}", 200)
    return (header.authserv_id or "").lower(), header, None


def _leading_id(value: str) -> str:
    """The authserv-id a header that authres cannot read starts with ("" when none)."""
    match = _LEADING_ID.match(value)
    return match.group(1).strip('"').lower() if match else ""


def result_properties(result) -> dict[str, str]:
    """``{"header.d": "acme.test", ...}`` of one authres result, lower-case."""
    return {f"{p.type}.{p.name}".lower(): (p.value or "").lower() for p in result.properties}


def dmarc_failure(mail: ParsedMail, authserv_id: str) -> str | None:
    """Why the trusted server's verdict does not vouch for the From address, or None.

    A ``dmarc=fail`` in the topmost block of ``authserv_id`` (whatever domain it names), or a
    block that cannot be read (the verdict might be a fail), is a reason. No trusted server
    configured, or no header of it, is no reason: there is no verdict to go by.
    """
    if not authserv_id.strip():
        return None
    block = trusted_results(mail, authserv_id)
    if block.unreadable:
        return f"the Authentication-Results of {authserv_id} cannot be read ({block.unreadable})"
    for result in block.results:
        if result.method == "dmarc" and result.result == "fail":
            domain = result_properties(result).get("header.from") or "(no header.from)"
            return f"dmarc=fail header.from={domain} by {authserv_id}"
    return None
