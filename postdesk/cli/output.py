"""How the CLI talks to people and scripts: aligned tables, JSON, and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime

import click


def to_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=_default)


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


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
