"""Locks a transaction holds until it ends: advisory locks on PostgreSQL (names of addresses,
sha256 sums...), and the set of names this transaction holds already. SQLite needs none: its
write transactions begin with ``BEGIN IMMEDIATE`` and run one at a time.

The listeners that forget the held locks at commit and rollback are bound to
:class:`postdesk.store.db.StoreSession`, postdesk's own sessions, never to SQLAlchemy's
``Session`` class: importing postdesk changes no other session in the process.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import bindparam, event, func, select
from sqlmodel import Session

from postdesk.store.db import StoreSession, execute


def held_locks(session: Session) -> set[str]:
    """The names of the locks this session's transaction holds: the row locks of
    ``tickets.get_for_update`` (``ticket:<id>``) and the advisory locks below. A commit gives
    them all back; a rolled-back savepoint gives back those taken inside it, and since the set
    does not say which, it is emptied then (taking a lock held already costs a query, no harm)."""
    return session.info.setdefault(_HELD_LOCKS, set())


class LockBusy(Exception):
    """A lock asked for without waiting (``nowait_locks``) is held by another transaction."""


def nowait_locks(session: Session) -> None:
    """From now on, ``session`` never waits for a lock another transaction holds (an
    advisory lock, or a ticket's row: ``tickets.row``, ``tickets.get_for_update``):
    ``LockBusy`` instead. The scheduler's sweeps lock tickets before addresses while workers
    lock addresses before tickets; a sweep that waited could deadlock with a worker, one that
    skips cannot."""
    wait_for_locks(session, False)


def wait_for_locks(session: Session, wait: bool) -> None:
    """Whether ``session`` may wait for a lock another transaction holds, from now on (see
    :func:`nowait_locks`). The worker waits only for its group's first mail, whose transaction
    holds nothing yet: a later mail that meets a lock another worker's group holds (its
    sender, its copy's sha256, its ticket) ends the group before it and comes first in the
    next one. Two groups that each held what the other then asked for would otherwise wait for
    each other, a deadlock PostgreSQL breaks only after ``deadlock_timeout``."""
    session.info[_NOWAIT] = not wait


def waits_for_locks(session: Session) -> bool:
    return not session.info.get(_NOWAIT)


def lock_until_commit(session: Session, name: str) -> None:
    """Hold a lock named ``name`` until the transaction ends, so that another transaction
    asking for the same name waits for this one's commit (a PostgreSQL advisory lock), or
    ``LockBusy`` when this session may not wait (``wait_for_locks``). SQLite needs none: its
    write transactions begin with ``BEGIN IMMEDIATE`` and run one at a time. A name already
    locked in this transaction costs no query."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = held_locks(session)
    if name in held:
        return
    key = {"key": _key(name)}
    if waits_for_locks(session):
        execute(session, _ADVISORY_LOCK, key)
    elif not execute(session, _TRY_ADVISORY_LOCK, key).scalar():
        raise LockBusy(f"{name} is held by another transaction")
    held.add(name)


def lock_address(session: Session, address: str) -> None:
    """Hold the lock of one mail address until the transaction ends: the limits that count
    what was received from it (the inbound flood limit) or sent to it (automatic replies) take
    it before they count, so that several workers never pass a limit together. The worker
    also takes each read-ahead mail's sender before the mail's first step, waiting only for a
    group's first mail (``wait_for_locks``): two workers holding mails of the same senders in
    opposite orders would otherwise each hold one sender and wait for the other's."""
    lock_until_commit(session, _address_name(address))


def _address_name(address: str) -> str:
    return f"address:{address.lower()}"


def _key(name: str) -> int:
    """The advisory lock's 64-bit key of a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(bindparam("key")))
_TRY_ADVISORY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("key")))
_HELD_LOCKS = "postdesk_held_locks"
_NOWAIT = "postdesk_nowait_locks"


@event.listens_for(StoreSession, "after_commit")
def _forget_locks_at_commit(session: StoreSession) -> None:
    if not session.in_nested_transaction():  # releasing a savepoint keeps the locks
        session.info.pop(_HELD_LOCKS, None)


@event.listens_for(StoreSession, "after_soft_rollback")
def _forget_locks_at_rollback(session: StoreSession, _previous) -> None:
    session.info.pop(_HELD_LOCKS, None)
