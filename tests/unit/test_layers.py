"""The import layers of DESIGN.md section 1 hold: a module imports only from lower layers."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken" in result.stdout


INGEST_IMPORTS = """
import sys
from postdesk.cli import cli
try:
    cli(["--config", sys.argv[1], "ingest", sys.argv[2]], prog_name="postdesk")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print(" ".join(sorted(sys.modules)))
"""


def test_ingest_imports_only_what_it_needs(tmp_path):
    """The MTA runs ``postdesk ingest`` once per mail, so its start-up is its cost: it loads
    the store and the intake, not the other commands, the template engine, the mail parser,
    the SMTP server or the migrations."""
    from tests.conftest import write_config

    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    subprocess.run([sys.executable, "-m", "postdesk", "--config", str(config), "init"],
                   check=True, capture_output=True, timeout=120)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(b"From: a@example.com\r\nTo: support@desk.test\r\nSubject: Hi\r\n\r\nHello\r\n")
    result = subprocess.run([sys.executable, "-c", INGEST_IMPORTS, str(config), str(mail)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stored inbound 1" in result.stderr
    loaded = set(result.stdout.split())
    commands = {name for name in loaded
                if name.startswith(("postdesk.cli.", "postdesk.runtime."))}
    assert commands == {"postdesk.cli.commands", "postdesk.cli.output", "postdesk.runtime.app",
                        "postdesk.runtime.logs"}
    for heavy in ("jinja2", "mailparser", "aiosmtpd", "alembic", "apscheduler", "imapclient"):
        assert heavy not in loaded


def test_every_command_is_listed_where_the_cli_finds_it():
    """``postdesk`` imports a command's module only when the command is asked for, by the
    name in ``COMMANDS``: a command missing there would exist only once its module is loaded,
    and ``--help`` lists each command by the summary kept there, which must be its help."""
    import importlib
    import pkgutil

    import postdesk.cli
    from postdesk.cli import COMMANDS, cli

    for module in pkgutil.iter_modules(postdesk.cli.__path__):
        importlib.import_module(f"postdesk.cli.{module.name}")
    assert set(cli.commands) == set(COMMANDS)
    for name, (module, summary) in COMMANDS.items():
        command = cli.commands[name]
        assert command.callback.__module__ == f"postdesk.cli.{module}"
        assert " ".join(command.help.partition("\n\n")[0].split()) == summary, name


HELP_IMPORTS = """
import importlib, pkgutil, sys
import postdesk.cli
from postdesk.cli import cli

def run(*args):
    try:
        cli(list(args), prog_name="postdesk")
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code

run("--version")
print("@@")
run("--help")
loaded = " ".join(sorted(sys.modules))
for module in pkgutil.iter_modules(postdesk.cli.__path__):
    importlib.import_module(f"postdesk.cli.{module.name}")
print("@@")
run("--help")  # the same list, now from the commands themselves
print("@@" + loaded)
"""

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "pydantic", "pydantic_settings", "numpy",
         "py3langid", "jinja2", "babel", "mailparser", "aiosmtpd", "apscheduler", "imapclient",
         "prometheus_client", "matplotlib", "postdesk.config", "postdesk.store")


def test_help_and_version_import_no_command():
    """``postdesk --help`` and ``--version`` list the commands from ``COMMANDS`` without
    importing a command's module, the settings, the store or any heavy library; the list is
    the one click prints once every command is loaded."""
    result = subprocess.run([sys.executable, "-c", HELP_IMPORTS], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    version, lean_help, full_help, loaded = result.stdout.split("@@")
    assert version.startswith("postdesk, version ")
    assert "Commands:" in lean_help and "ingest " in lean_help
    assert lean_help == full_help
    loaded = set(loaded.split())
    assert {name for name in loaded if name.startswith("postdesk")} == {
        "postdesk", "postdesk.cli", "postdesk.runtime", "postdesk.runtime.app"}
    for heavy in HEAVY:
        assert not {name for name in loaded if name == heavy or name.startswith(heavy + ".")}, heavy


SERVE_EDGE_IMPORTS = """
import asyncio, sys
from postdesk import config
from postdesk.cli.commands import require_schema
from postdesk.runtime.app import App
from postdesk.runtime.processing import ProcessingChild
from postdesk.runtime.serve import Services, start_checkpointer

ProcessingChild.start = lambda self, ready_timeout=0: None  # the child is another interpreter
app = App(config.load(sys.argv[1], environ={}))
require_schema(app)

async def edge():
    services = Services(app)
    await services.bind_smtp()
    checkpointer = start_checkpointer(app.db)
    services.start_processing()
    await services.start_smtp()
    await services.stop()
    checkpointer.stop()

asyncio.run(edge())
print(" ".join(sorted(sys.modules)))
"""


def test_the_serve_edge_imports_nothing_only_the_worker_needs(tmp_path):
    """``serve``'s own process (SMTP edge, group commit, checkpoints, the child's watch) starts
    what ``serve`` starts there, and loads neither the worker, the desk, the templates, the
    mail parser, the language model nor the scheduler: its processing child does."""
    from tests.conftest import write_config

    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    subprocess.run([sys.executable, "-m", "postdesk", "--config", str(config), "init"],
                   check=True, capture_output=True, timeout=120)
    result = subprocess.run([sys.executable, "-c", SERVE_EDGE_IMPORTS, str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"postdesk.gateway.smtp", "postdesk.runtime.processing", "aiosmtpd"} <= loaded
    for heavy in ("numpy", "py3langid", "jinja2", "babel", "mailparser", "apscheduler",
                  "postdesk.gateway.worker", "postdesk.desk", "postdesk.templates",
                  "postdesk.mail.parse", "postdesk.scheduler"):
        assert not {name for name in loaded if name == heavy or name.startswith(heavy + ".")}, heavy
