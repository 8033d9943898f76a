"""Our own template filters: dates, file sizes and code labels written in the mail's language.

Each filter is a small function of a value and a locale, without Babel: we ship two languages
and need four formats. ``filters_for(locale)`` binds them for one environment. A value of an
unexpected type is shown as text rather than failing, so a filter never blocks a mail.
Times are shown as given (the renderer has moved them to the desk's time zone); an aware time
is labelled with its zone's abbreviation or offset (``CET``, ``+04``).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import partial
from typing import Any, Callable

from postdesk.templates import labels


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            parse = date.fromisoformat if len(value) == 10 else datetime.fromisoformat
            return parse(value)
        except ValueError:
            return None
    return None


def format_date(value: Any, locale: str) -> str:
    """``1er mars 2025`` / ``1 March 2025``."""
    day = _as_date(value)
    if day is None:
        return "" if value is None else str(value)
    month = labels.MONTHS[locale][day.month - 1]
    number = "1er" if locale == "fr" and day.day == 1 else str(day.day)
    return f"{number} {month} {day.year}"


def format_datetime(value: Any, locale: str) -> str:
    """``3 mars 2025 à 09:12 CET`` / ``3 March 2025 at 09:12 CET`` (the label when the time
    knows its zone); a plain date shows as a date."""
    moment = _as_date(value)
    if not isinstance(moment, datetime):
        return format_date(value, locale)
    joiner = "à" if locale == "fr" else "at"
    label = f" {moment:%Z}" if moment.tzinfo is not None else ""
    return f"{format_date(moment, locale)} {joiner} {moment:%H:%M}{label}"


def format_filesize(value: Any, locale: str) -> str:
    """``500 Ko``, ``1,5 Mo`` / ``500 KB``, ``1.5 MB`` (1 Ko = 1024 octets)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    units = labels.SIZE_UNITS[locale]
    size, unit = float(value), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    shown = f"{size:.0f}" if unit == 0 or size >= 10 or size.is_integer() else f"{size:.1f}"
    if locale == "fr":
        shown = shown.replace(".", ",")
    return f"{shown} {units[unit]}"


def label(value: Any, locale: str, table: dict[str, dict[str, str]]) -> str:
    """The label of a code in the mail's language; an unknown code is shown unchanged."""
    return table[locale].get(value, "" if value is None else str(value))


def filters_for(locale: str) -> dict[str, Callable[[Any], str]]:
    """Our filters bound to one locale, by the name templates use."""
    return {
        "date": partial(format_date, locale=locale),
        "datetime": partial(format_datetime, locale=locale),
        "filesize": partial(format_filesize, locale=locale),
        "status_label": partial(label, locale=locale, table=labels.STATUS),
        "priority_label": partial(label, locale=locale, table=labels.PRIORITY),
        "step_label": partial(label, locale=locale, table=labels.STEP),
    }
