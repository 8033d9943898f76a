"""A lean install: ``postdesk serve`` on SQLite needs none of the extras (matplotlib, psycopg,
aiosmtplib), and a feature whose extra is missing says which one to install, in one line.

``serve`` runs in a subprocess whose interpreter cannot import the extras (a ``sitecustomize``
on its path refuses them, as an install without them would); the one-line answers are checked
in-process, with the module made unimportable in ``sys.modules``.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from postdesk.cli import cli
from tests.conftest import write_config
from tests.faults.support import REPO, Serve, Store, wait_until
from tests.helpers import make_mail

EXTRAS = ("matplotlib", "psycopg", "psycopg_binary", "aiosmtplib")
BLOCKER = f'''
import sys

class _NotInstalled:
    """Refuses the optional dependencies, as an install without them would."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.mark.timeout(120)
def test_serve_on_sqlite_takes_and_processes_mail_without_the_extras(tmp_path, sqlite_url):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    serve = Serve(tmp_path, sqlite_url, env=env)
    refused = subprocess.run(
        [sys.executable, "-c", "import matplotlib"], env={**os.environ, **env},
        capture_output=True)
    assert b"No module named 'matplotlib'" in refused.stderr
    serve.start()
    store = Store(sqlite_url)
    try:
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=10) as client:
            client.sendmail("alice@example.com", ["support@desk.test"], make_mail())
        wait_until(lambda: store.scalar("SELECT count(*) FROM ticket") == 1, 60,
                   "the ticket", log=serve.log)
        assert serve.stop() == 0
    finally:
        serve.kill()
        store.close()
    assert "Traceback" not in serve.log_text()


def test_report_chart_without_matplotlib_says_which_extra_to_install(tmp_path, sqlite_url,
                                                                       monkeypatch):
    path = write_config(tmp_path, sqlite_url)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(cli, ["--config", str(path), "report", "--chart",
                                      str(tmp_path / "c.png")])
    assert result.exit_code == 1
    assert result.output == ("postdesk: --chart needs matplotlib, which is not installed: "
                             "install postdesk[chart] (pip install 'postdesk[chart]')\n")
    assert not (tmp_path / "c.png").exists()


def test_a_postgresql_url_without_psycopg_is_a_configuration_error(tmp_path, monkeypatch):
    path = write_config(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for args in (["tickets", "list"], ["ingest", "--recipient", "support@desk.test"]):
        result = CliRunner().invoke(cli, ["--config", str(path), *args], input=make_mail())
        assert result.exit_code == 78, result.output
        assert result.output.count("\n") == 1
        assert "database.url: PostgreSQL needs psycopg, which is not installed" in result.output
        assert "pip install 'postdesk[postgres]'" in result.output


def test_the_core_dependencies_leave_the_extras_out_and_test_pulls_them_in():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for name in ("matplotlib", "psycopg", "aiosmtplib"):
        assert name not in core
    assert extras["chart"] == ["matplotlib>=3.8"]
    assert extras["postgres"] == ["psycopg[binary]>=3.1"]
    assert any(d.startswith("aiosmtplib") for d in extras["bench"])
    test = " ".join(extras["test"])
    assert "postdesk[chart,postgres]" in test and "aiosmtplib" in test
    # django-helpdesk, the benchmark's peer, lives in a venv of its own: never in the suite's
    assert extras["peer"] == ["django-helpdesk==2.6.1"] and "helpdesk" not in test


@pytest.mark.parametrize(("module", "allowed"), [
    ("matplotlib", {"postdesk/cli/report_cmd.py"}),
    ("psycopg", set()),
    ("aiosmtplib", {"bench/client.py", "bench/memory.py"}),
    ("django", {"bench/helpdesk_child.py"}),  # run by the peer venv's interpreter only
    ("helpdesk", {"bench/helpdesk_child.py"}),
])
def test_the_extras_are_imported_only_where_they_are_needed(module, allowed):
    importing = set()
    for folder in ("postdesk", "bench", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if f"import {module}" in text or f"from {module}" in text:
                importing.add(str(path.relative_to(REPO)))
    importing.discard("tests/acceptance/test_lean_install.py")
    assert importing == allowed


def test_the_licence_file_is_the_one_pyproject_names():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = Path(REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
