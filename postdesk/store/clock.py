"""Times as the store keeps them: timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every stored time is)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Any datetime as aware UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
