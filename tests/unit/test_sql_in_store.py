"""SQL lives in ``postdesk/store`` only: every other package asks the store's intent-named
functions, so a query has one home (issue 22, item 6)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "postdesk"
STORE = PACKAGE / "store"
# What a module outside the store may take from SQLAlchemy/SQLModel: the session type, the
# row type, the table models' base and the exceptions, nothing that builds or runs a statement.
ALLOWED = {"sqlmodel": {"Session", "SQLModel"}, "sqlalchemy.engine": {"Row"}}
RUNS_SQL = {"execute", "exec", "scalar", "scalars", "exec_driver_sql"}


def _outside_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if STORE not in p.parents]


def _sql_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names
                      if a.name.split(".")[0] in ("sqlalchemy", "sqlmodel")]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in ("sqlalchemy", "sqlmodel"):
            if node.module == "sqlalchemy.exc":
                continue
            allowed = ALLOWED.get(node.module, set())
            found += [f"{where} from {node.module} import {a.name}" for a in node.names
                      if a.name not in allowed]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in RUNS_SQL:
            found.append(f"{where} .{node.func.attr}(...)")
    return found


def test_no_module_outside_the_store_builds_or_runs_sql():
    modules = _outside_store()
    assert len(modules) > 50  # the walk found the package
    found = [use for path in modules for use in _sql_uses(path)]
    assert found == []


def test_the_rule_sees_what_it_forbids(tmp_path):
    """The checker itself: each way of writing SQL outside the store is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text("from sqlalchemy import select, text\nimport sqlalchemy as sa\n"
                      "from sqlmodel import Session, select as s2\n"
                      "from sqlalchemy.exc import OperationalError\n"
                      "def f(session):\n    session.execute(text('x'))\n"
                      "    return session.scalars(s2())\n", encoding="utf-8")
    uses = [use.split(" ", 1)[1] for use in _sql_uses_anywhere(sample)]
    assert uses == ["from sqlalchemy import select", "from sqlalchemy import text",
                    "import sqlalchemy", "from sqlmodel import select",
                    ".execute(...)", ".scalars(...)"]


def _sql_uses_anywhere(path: Path) -> list[str]:
    global PACKAGE  # noqa: PLW0603 - the checker names paths relative to the package's parent
    saved, PACKAGE = PACKAGE, path.parent
    try:
        return _sql_uses(path)
    finally:
        PACKAGE = saved
