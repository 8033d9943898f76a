"""The IMAP edge keeps its seam: imapclient is imported by gateway/imap.py alone (the poller's
loop, lease and backoff live in gateway/imap_poller.py)."""

import ast
from pathlib import Path

import postdesk

PACKAGE = Path(postdesk.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_gateway_imap_imports_imapclient():
    users = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   if any(name.split(".")[0] == "imapclient" for name in imported_modules(path)))
    assert users == ["gateway/imap.py"]
