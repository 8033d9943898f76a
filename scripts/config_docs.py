"""Write the key tables of docs/configuration.md from the schema in postdesk/config.py.

    python scripts/config_docs.py          # rewrite the tables in place
    python scripts/config_docs.py --check  # exit 1 if they differ from the schema

Each table sits between ``<!-- config-keys NAME -->`` and ``<!-- /config-keys -->``, NAME being
a table of the configuration (``desk``, ``imap``…) or ``deprecated`` (the old names); the prose
around them is written by hand. tests/unit/test_config_docs.py fails when a table is stale.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from postdesk import config

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BLOCK = re.compile(r"(<!-- config-keys (\S+) -->\n).*?(<!-- /config-keys -->)", re.S)
_UNIT_TEXT = (("d", 86400), ("h", 3600), ("m", 60))


def render(text: str) -> str:
    """``text`` with every generated table rewritten; every table of the schema must have one."""
    seen: list[str] = []

    def table(match: re.Match) -> str:
        seen.append(match.group(2))
        return match.group(1) + block(match.group(2)) + match.group(3)

    text = BLOCK.sub(table, text)
    missing = sorted((set(config.TABLES) | {"deprecated"}) - set(seen))
    if missing:
        raise ValueError(f"no <!-- config-keys NAME --> block for: {', '.join(missing)}")
    return text


def block(name: str) -> str:
    if name == "deprecated":
        return _deprecated()
    if name not in config.TABLES:
        raise ValueError(f"<!-- config-keys {name} -->: no such table in the configuration")
    table = config.LISTS.get(name, config.TABLES[name])
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    meanings = docstrings(table)
    for key, info in config.fields(table).items():
        rows.append(f"| `{key}` | {default_text(info)} | {allowed_text(info)} | "
                    f"{_one_line(meanings.get(key, ''))} |")
    return "\n".join(rows) + "\n"


def docstrings(table: type) -> dict[str, str]:
    """The docstring written under each key of ``table`` in postdesk/config.py."""
    found = {}
    (tree,) = ast.parse(inspect.getsource(table)).body
    for key, text in zip(tree.body, tree.body[1:]):
        if (isinstance(key, ast.AnnAssign) and isinstance(key.target, ast.Name)
                and isinstance(text, ast.Expr) and isinstance(text.value, ast.Constant)
                and isinstance(text.value.value, str)):
            found[key.target.id] = inspect.cleandoc(text.value.value)
    return found


def _deprecated() -> str:
    rows = ["| old key | new key | a bare number under the old key is in |", "|---|---|---|"]
    for name, table in config.TABLES.items():
        table = config.LISTS.get(name, table)
        where = f"[[{name}]]" if name in config.LISTS else f"[{name}]"
        for old, (new, unit) in table.renamed.items():
            rows.append(f"| {where} `{old}` | `{new}` | {'days' if unit == 86400 else 'seconds'} |")
    return "\n".join(rows) + "\n"


def default_text(info: Any) -> str:
    """The default as it would be written in the file (a valid value of the key)."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, config.Bytes):
        return f"`{int(value)}` ({_size_text(value)})"
    return f"`{_toml(value)}`"


def allowed_text(info: Any) -> str:
    kind = config.field_type(info)
    found = config.bounds(kind)
    item = _base(kind)
    each = "each " if typing.get_origin(_bare(kind)) is tuple else ""
    if found is not None:
        if item is config.Duration:
            return f"{each}{_duration_text(found.low)} – {_duration_text(found.high)}"
        return f"{each}{config._number(found.low)} – {config._number(found.high)}"
    if typing.get_origin(item) is typing.Literal:
        return ", ".join(f"`{v}`" for v in typing.get_args(item))
    if item is bool:
        return "`true`, `false`"
    return "list of text" if each else "text"


def _bare(kind: Any) -> Any:
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def _base(kind: Any) -> Any:
    kind = _bare(kind)
    if typing.get_origin(kind) is tuple:
        kind = _bare(typing.get_args(kind)[0])
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, config.Duration):
        return json.dumps(_duration_text(value))
    if isinstance(value, (int, float)):
        return config._number(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _duration_text(seconds: float) -> str:
    if seconds == 0:
        return "0"
    for unit, size in _UNIT_TEXT:
        if seconds >= size and seconds % size == 0:
            return f"{config._number(seconds / size)}{unit}"
    return f"{config._number(seconds)}s"


def _size_text(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("GB", 1000**3),
                       ("MB", 1000**2), ("KB", 1000)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    fresh = render(text)
    if "--check" in argv:
        if fresh != text:
            print(f"{DOC} is out of date: run python scripts/config_docs.py", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        DOC.write_text(fresh, encoding="utf-8")
        print(f"rewrote the tables of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
