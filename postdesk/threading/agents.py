"""Who is an agent: the From address is a configured agent AND the mail proves it.

The proof is an ``Authentication-Results`` header (RFC 8601) added by the trusted receiving
server (``[agent_auth] trusted_authserv_id``) with ``dkim=pass`` for the agent's domain or
``spf=pass`` for the agent's address, or the mail came from the shared mailbox's Sent folder
(only mailbox users can put it there). Only the topmost header of the trusted server counts:
headers further down were written before our server saw the mail and may be forged. A mail
that claims an agent's address without proof is a customer's mail, and is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import authres

from postdesk.config import AgentSettings, Settings
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
    proof = _authenticated(mail, settings.agent_auth.trusted_authserv_id, claimed.address)
    if proof:
        return AgentCheck(claimed, claimed, proof)
    return AgentCheck(None, claimed, "no passing Authentication-Results from "
                      f"{settings.agent_auth.trusted_authserv_id or '(no trusted server set)'}")


def _authenticated(mail: ParsedMail, authserv_id: str, address: str) -> str | None:
    if not authserv_id:
        return None
    for value in mail.headers.get("authentication-results", ()):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
        except Exception:  # noqa: BLE001 - a malformed header proves nothing
            continue
        if (header.authserv_id or "").lower() != authserv_id.lower():
            continue
        return _passes(header.results, address)  # the topmost trusted header only
    return None


def _passes(results, address: str) -> str | None:
    domain = address.rpartition("@")[2]
    for result in results:
        props = {f"{p.type}.{p.name}".lower(): (p.value or "").lower() for p in result.properties}
        if result.method == "dkim" and result.result == "pass" and props.get("header.d") == domain:
            return f"dkim=pass header.d={domain}"
        if result.method == "spf" and result.result == "pass" and props.get("smtp.mailfrom") == address:
            return f"spf=pass smtp.mailfrom={address}"
    return None
