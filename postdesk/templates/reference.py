"""Writes the variable reference of docs/templates.md from the registry, so the doc cannot drift.

``markdown()`` returns the generated block: the shared shapes (desk, ticket, person, message…)
once, then one table per key. ``python -m postdesk.templates.reference --write docs/templates.md``
replaces the block between the markers; a unit test checks the file holds exactly this text.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

from postdesk.templates.keys import KEYS, Field, Variable

BEGIN = "<!-- BEGIN GENERATED: python -m postdesk.templates.reference --write docs/templates.md -->"
END = "<!-- END GENERATED -->"
HEADER = ("| variable | type | description | example |", "|---|---|---|---|")


def markdown() -> str:
    """The generated reference, without the markers."""
    shared = _shared()
    lines = ["### Shared variables", "",
             "These variables have the same fields in every key that declares them.", ""]
    for variable in shared.values():
        fields = _field_rows(variable.fields, variable.name, variable.example)
        lines += [f"#### `{variable.name}`", "", *HEADER, *(_row(*row) for row in fields), ""]
    for key in KEYS.values():
        lines += [f"### `{key.name}`", "", f"To the {key.audience}. {key.description}.", "",
                  *HEADER]
        for variable in key.variables:
            lines += _rows(variable, variable.name, shared=variable.name in shared)
        lines.append("")
    return "\n".join(lines)


def _shared() -> dict[str, Variable]:
    seen: dict[str, list[Variable]] = {}
    for key in KEYS.values():
        for variable in key.variables:
            seen.setdefault(variable.name, []).append(variable)
    return {name: found[-1] for name, found in sorted(seen.items())
            if len(found) > 1 and found[0].fields}


def _rows(variable: Variable, path: str, shared: bool = False) -> list[str]:
    example = f"see [`{path}`](#{path})" if shared else _shown(variable.example)
    rows = [_row(path, variable.type, variable.description, example)]
    if not shared:
        rows += [_row(*row) for row in _field_rows(variable.fields, path, variable.example)]
    return rows


def _field_rows(fields: tuple[Field, ...], prefix: str, parent: Any) -> Iterator[tuple[str, ...]]:
    item = parent[0] if isinstance(parent, list) and parent else parent
    prefix = f"{prefix}[]" if isinstance(parent, list) else prefix
    for field in fields:
        value = item.get(field.name) if isinstance(item, dict) else None
        path = f"{prefix}.{field.name}"
        yield path, field.type, field.description, _shown(value)
        yield from _field_rows(field.fields, path, value)


def _row(path: str, type_: str, description: str, example: str) -> str:
    cells = (f"`{path}`", type_, description, example)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _shown(value: Any) -> str:
    if isinstance(value, dict | list) and not _is_text_list(value):
        return ""
    if isinstance(value, datetime):
        return f"`{value:%Y-%m-%d %H:%M}`"
    if isinstance(value, date):
        return f"`{value.isoformat()}`"
    if isinstance(value, bool) or value is None:
        return f"`{str(value).lower() if value is not None else 'null'}`"
    text = ", ".join(value) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    if not text:
        return ""
    return f"`{text[:47] + '…' if len(text) > 48 else text}`"


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def write(path: Path) -> None:
    """Replace the generated block of ``path`` with the current reference."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{markdown()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        write(Path(sys.argv[2]))
    else:
        print(markdown())
