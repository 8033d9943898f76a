"""How the CLI talks to people and scripts: aligned tables, JSON, and one-line errors.

Times are shown in the desk's time zone (``[desk] timezone`` of the command's settings), labelled
(``2026-12-08 06:00 CET``); JSON carries them as ISO-8601 with the zone's offset.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime

import click

from postdesk.localtime import local, stamp


def to_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=_default)


def _default(value):
    if isinstance(value, datetime):
        return local(value, desk_timezone()).isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def when(value: datetime | None) -> str:
    """``2026-12-08 06:00 CET``: the time in the desk's zone, labelled; ``-`` for none."""
    return stamp(value, desk_timezone())


def desk_timezone() -> str:
    """The desk's zone, from the settings of the running command (UTC before they are read)."""
    context = click.get_current_context(silent=True)
    lazy = context.find_root().obj if context is not None else None
    app = getattr(lazy, "_app", None)
    return app.settings.desk.timezone if app is not None else "UTC"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str = "(none)") -> None:
    """Print rows under headers, columns aligned; long cells are cut with an ellipsis."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(value: object, limit: int = 60) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(message: str, code: int = 1) -> None:
    """Print ``postdesk: message`` on stderr and exit with ``code`` (never a traceback)."""
    click.echo(f"postdesk: {message}", err=True)
    sys.exit(code)
