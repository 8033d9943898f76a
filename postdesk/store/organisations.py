"""Customer organisations and the tickets that belong to a customer or an organisation.

An organisation owns mail domains and names admins who may see all its tickets. Organisations
come from two places: ``[[organisations]]`` in the configuration (changed by editing the file)
and the ``organisation`` table (``postdesk orgs add``); when both claim a domain or an admin,
the configuration wins. Domains and addresses are compared lower-cased; a domain matches
exactly (``client.test`` does not cover ``eu.client.test``). Queries only: who may see what is
decided in ``desk/history.py``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, or_, select
from sqlmodel import Session

from postdesk.config import Settings
from postdesk.mail.addresses import domain_of, normalise_address
from postdesk.store.models import Escalation, Organisation, Participant, Ticket

CONFIG, STORE = "config", "store"


@dataclass(frozen=True)
class OrgInfo:
    """One organisation, wherever it is defined; ``source`` is ``config`` or ``store``."""

    name: str
    domains: tuple[str, ...]
    admins: tuple[str, ...]
    source: str

    def is_admin(self, address: str) -> bool:
        return _address(address) in self.admins

    def owns(self, address: str) -> bool:
        return domain_of(address) in self.domains


def _info(name: str, domains: Iterable[str], admins: Iterable[str], source: str) -> OrgInfo:
    return OrgInfo(name, tuple(domain_of(f"x@{d.strip()}") or d.strip().lower() for d in domains),
                   tuple(_address(a) for a in admins), source)


def _address(address: str) -> str:
    """``address`` normalised (ASCII letters lower-cased only: U+212A KELVIN SIGN is not
    ``k``, so a look-alike is never an admin); as written, stripped, when it is no address."""
    return normalise_address(address) or address.strip()


def configured(settings: Settings) -> list[OrgInfo]:
    return [_info(o.name, o.domains, o.admins, CONFIG) for o in settings.organisations]


def stored(session: Session) -> list[OrgInfo]:
    rows = session.scalars(select(Organisation).order_by(Organisation.name))
    return [_info(r.name, json.loads(r.domains), json.loads(r.admins), STORE) for r in rows]


def all_organisations(session: Session, settings: Settings) -> list[OrgInfo]:
    """Configured organisations first (in file order), then stored ones by name."""
    return configured(settings) + stored(session)


def find(session: Session, settings: Settings, name: str) -> OrgInfo | None:
    """The organisation called ``name`` (exact, case-insensitive), configuration first."""
    wanted = name.strip().casefold()
    return next((o for o in all_organisations(session, settings)
                 if o.name.casefold() == wanted), None)


def administered_by(session: Session, settings: Settings, address: str) -> OrgInfo | None:
    """The organisation ``address`` is an admin of (the first one, configuration first)."""
    return next((o for o in all_organisations(session, settings) if o.is_admin(address)), None)


def is_admin(session: Session, settings: Settings, address: str,
             organisation: str | None = None) -> bool:
    """True when ``address`` administers ``organisation`` (by name), or any one when None."""
    return any(o.is_admin(address) for o in all_organisations(session, settings)
               if organisation is None or o.name.casefold() == organisation.casefold())


def add(session: Session, now: datetime, name: str, domains: Sequence[str],
        admins: Sequence[str] = ()) -> Organisation:
    row = Organisation(name=name.strip(), domains=json.dumps([d.lower() for d in domains]),
                       admins=json.dumps([a.lower() for a in admins]), created_at=now)
    session.add(row)
    session.flush()
    return row


def remove(session: Session, name: str) -> bool:
    """Delete the stored organisation ``name``; False when there is none."""
    result = session.execute(delete(Organisation).where(Organisation.name == name.strip()))
    return result.rowcount > 0


def tickets_of(session: Session, address: str, domains: Collection[str] = (), *,
               first: Collection[str] = (), limit: int | None = None) -> list[Ticket]:
    """Tickets ``address`` requested or takes part in, plus those requested from ``domains``.

    Merged tickets are left out (their messages moved to the ticket they were merged into).
    Order: statuses in ``first`` on top, then latest activity first.
    """
    mine = or_(Ticket.requester == address, Ticket.id.in_(
        select(Participant.ticket_id).where(Participant.address == address)))
    scope = or_(mine, *(Ticket.requester.endswith(f"@{d}", autoescape=True) for d in domains))
    on_top = case((Ticket.status.in_([str(s) for s in first]), 0), else_=1) if first else None
    order = [o for o in (on_top, Ticket.updated_at.desc(), Ticket.id.desc()) if o is not None]
    query = select(Ticket).where(scope, Ticket.merged_into.is_(None)).order_by(*order)
    return list(session.scalars(query.limit(limit) if limit else query))


def may_see(session: Session, ticket: Ticket, address: str, domains: Collection[str] = ()) -> bool:
    """True when ``address`` requested or takes part in ``ticket``, or it comes from ``domains``."""
    if ticket.requester == address or domain_of(ticket.requester) in domains:
        return True
    return session.scalar(select(Participant.id).where(
        Participant.ticket_id == ticket.id, Participant.address == address).limit(1)) is not None


def escalated_ids(session: Session, ticket_ids: Collection[int]) -> set[int]:
    """The tickets among ``ticket_ids`` that have (or had) an escalation."""
    if not ticket_ids:
        return set()
    return set(session.scalars(select(Escalation.ticket_id).where(
        Escalation.ticket_id.in_(list(ticket_ids))).distinct()))
