"""Queries on the saved versions of admin templates: the current rows, the history of a
template, its state as of any version, and saves that hand out the next version number safely.

A version number counts the changes of one template (key + locale) across its three parts: one
change (a save, a revert, an import) takes the next number and stores one row per part it
changes, so the numbers of one part increase with gaps and "version 4 of ticket_created (fr)"
is one change an admin made. The template *as of* version 4 is each part's newest row up to 4.
An empty source means "back to the packaged default". Numbers are handed out under a lock per
template (an advisory lock on PostgreSQL; on SQLite every write transaction already runs alone),
so concurrent saves never share a number. Nothing here knows Jinja or validates a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from postdesk.store.locks import lock_until_commit
from postdesk.store.models import TemplateVersion

TV = TemplateVersion


def current(session: Session, key: str, locale: str, part: str) -> TemplateVersion | None:
    """The newest row of one part, or None when the part was never saved."""
    query = (select(TV).where(TV.key == key, TV.locale == locale, TV.part == part)
             .order_by(TV.version.desc()).limit(1))
    return session.scalars(query).first()


def current_all(session: Session) -> list[TemplateVersion]:
    """The newest row of every (key, locale, part) ever saved, including reverts to default."""
    latest = (select(TV.key, TV.locale, TV.part, func.max(TV.version).label("version"))
              .group_by(TV.key, TV.locale, TV.part).subquery())
    query = select(TV).join(latest, (TV.key == latest.c.key) & (TV.locale == latest.c.locale)
                            & (TV.part == latest.c.part) & (TV.version == latest.c.version))
    return list(session.scalars(query.order_by(TV.key, TV.locale, TV.part)))


def history(session: Session, key: str, locale: str) -> list[TemplateVersion]:
    """Every row of a template, newest version first (parts of one version in saving order)."""
    query = (select(TV).where(TV.key == key, TV.locale == locale)
             .order_by(TV.version.desc(), TV.id))
    return list(session.scalars(query))


def get_version(session: Session, key: str, locale: str, version: int) -> list[TemplateVersion]:
    """The rows saved as ``version`` (one per part it changed); empty when there is none."""
    query = (select(TV).where(TV.key == key, TV.locale == locale, TV.version == version)
             .order_by(TV.id))
    return list(session.scalars(query))


def as_of(session: Session, key: str, locale: str, version: int) -> dict[str, TemplateVersion]:
    """Each part's newest row at or before ``version``; parts never saved by then are absent."""
    query = (select(TV).where(TV.key == key, TV.locale == locale, TV.version <= version)
             .order_by(TV.version))
    return {row.part: row for row in session.scalars(query)}


def save(session: Session, key: str, locale: str, part: str, source: str, author: str,
         comment: str, now: datetime) -> TemplateVersion:
    """Store ``source`` as the next version of one part (empty: back to the packaged default)."""
    return save_parts(session, key, locale, {part: source}, author, comment, now)[0]


def save_parts(session: Session, key: str, locale: str, sources: Mapping[str, str],
               author: str, comment: str, now: datetime) -> list[TemplateVersion]:
    """Store several parts of one template as one new version; all rows share its number."""
    if not sources:
        raise ValueError("save_parts needs at least one part")
    _lock_template(session, key, locale)
    last = session.scalar(select(func.max(TV.version)).where(TV.key == key, TV.locale == locale))
    rows = [TV(key=key, locale=locale, part=part, version=(last or 0) + 1, source=source,
               author=author[:320], comment=comment, created_at=now)
            for part, source in sources.items()]
    session.add_all(rows)
    session.flush()
    return rows


def _lock_template(session: Session, key: str, locale: str) -> None:
    """Serialise the savers of one template until the transaction ends."""
    lock_until_commit(session, f"template_version:{key}:{locale}")
