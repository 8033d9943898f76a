"""Who is an agent: the From address is a configured agent AND the mail proves it.

The proof is an ``Authentication-Results`` header (RFC 8601) added by the trusted receiving
server (``[agent_auth] trusted_authserv_id``) with ``dkim=pass`` for the agent's domain or
``spf=pass`` for the agent's address, or the mail came from the shared mailbox's Sent folder
(only mailbox users can put it there). Only the topmost block of the trusted server's headers
counts (``postdesk.mail.authresults``): headers further down were written before our server
saw the mail and may be forged, and a block that cannot be read proves nothing, even if a
readable one follows. A mail that claims an agent's address without proof is a customer's
mail, and is reported as such, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from postdesk.config import AgentSettings, Settings
from postdesk.mail.authresults import result_properties, trusted_results
from postdesk.mail.addresses import normalise_address
from postdesk.mail.parse import ParsedMail


@dataclass(frozen=True)
class AgentCheck:
    agent: AgentSettings | None  # the verified agent, or None
    claimed: AgentSettings | None  # the agent the From names, verified or not
    reason: str  # how it was verified, or why not


def agents_by_address(settings: Settings) -> dict[str, AgentSettings]:
    return {normalise_address(a.address) or a.address.lower(): a for a in settings.agents}


def check_agent(mail: ParsedMail, settings: Settings, source: str) -> AgentCheck:
    claimed = agents_by_address(settings).get(mail.from_addr or "")
    if claimed is None:
        return AgentCheck(None, None, "not an agent address")
    if source.startswith("imap-sent:"):
        return AgentCheck(claimed, claimed, f"sent from the shared mailbox ({source})")
    if not settings.agent_auth.required:
        return AgentCheck(claimed, claimed, "agent_auth.required is false (development)")
    authserv_id = settings.agent_auth.trusted_authserv_id
    if not authserv_id:
        return AgentCheck(None, claimed, "no trusted server set ([agent_auth] trusted_authserv_id)")
    proof, why_not = _authenticated(mail, authserv_id, claimed.address)
    return AgentCheck(claimed if proof else None, claimed, proof or why_not)


def _authenticated(mail: ParsedMail, authserv_id: str, address: str) -> tuple[str | None, str]:
    """The passing result that proves ``address``, or None and why not."""
    block = trusted_results(mail, authserv_id)
    if not block.found:
        return None, f"no Authentication-Results from {authserv_id}"
    if block.unreadable:
        return None, (f"the topmost Authentication-Results from {authserv_id} cannot be read "
                      f"({block.unreadable})")
    proof = _passes(block.results, address)
    return proof, "" if proof else f"no passing Authentication-Results from {authserv_id}"


def _passes(results, address: str) -> str | None:
    domain = address.rpartition("@")[2]
    for result in results:
        props = result_properties(result)
        if result.method == "dkim" and result.result == "pass" and props.get("header.d") == domain:
            return f"dkim=pass header.d={domain}"
        if result.method == "spf" and result.result == "pass" and props.get("smtp.mailfrom") == address:
            return f"spf=pass smtp.mailfrom={address}"
    return None
