"""The ``postdesk`` command when the configuration or the store is wrong: one line on stderr
that names what to fix, a documented exit code, never a traceback, never a file created behind
the user's back."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.helpers import make_mail, run_cli

POSTDESK = [sys.executable, "-m", "postdesk"]
REPO = Path(__file__).resolve().parents[2]
EX_DATAERR, EX_CONFIG = 65, 78


def run(folder: Path, *args: str, input: bytes | None = None, env: dict | None = None,
        process: bool = False):
    """``postdesk ARGS`` in ``folder`` with no ``POSTDESK_*`` variable but ``env``; in-process
    (click's runner), or a real subprocess when ``process``. ``serve`` in-process is for a
    ``serve`` that must refuse to start: should it get as far as serving, it fails at once
    (``serve_must_not_start``) instead of forking and serving inside the test."""
    if process:
        return run_process(folder, *args, input=input, env=env)
    result = run_cli(*args, input=input, env=env, cwd=folder, clean_env=True)
    return result.returncode, result.stderr.decode(errors="replace")


@pytest.fixture
def serve_must_not_start(monkeypatch):
    """``postdesk serve`` in-process ends with a traceback (exit 1) if it starts serving."""
    import postdesk.runtime.serve  # noqa: PLC0415

    async def started(*args, **kwargs):
        raise AssertionError("serve started instead of refusing to")

    monkeypatch.setattr(postdesk.runtime.serve, "serve", started)


def run_process(folder: Path, *args: str, input: bytes | None = None, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}
    environ["PYTHONPATH"] = str(REPO)
    result = subprocess.run([*POSTDESK, *args], input=input, capture_output=True, timeout=120,
                            cwd=folder, env={**environ, **(env or {})})
    return result.returncode, result.stderr.decode(errors="replace")


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# --- the configuration file -----------------------------------------------------------------

def test_a_folder_given_as_config_is_a_config_error(tmp_path):
    code, err = run(tmp_path, "--config", ".", "tickets", "list")
    assert code == EX_CONFIG
    line = one_line(err)
    assert "configuration error" in line and "is a folder" in line and "postdesk.toml" in line


def test_a_latin1_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "postdesk.toml"
    path.write_bytes('[desk]\nname = "Société Générale"\n'.encode("latin-1"))
    code, err = run(tmp_path, "--config", str(path), "tickets", "list")
    assert code == EX_CONFIG
    line = one_line(err)
    assert str(path) in line and "UTF-8" in line


def test_an_unreadable_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "postdesk.toml"
    path.write_text("[desk]\n")
    path.chmod(0)
    if _readable(path):
        pytest.skip("running as root: every file is readable")
    code, err = run(tmp_path, "--config", str(path), "tickets", "list")
    assert code == EX_CONFIG and str(path) in one_line(err)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except PermissionError:
        return False


@pytest.mark.parametrize("text, env, key, process", [
    ("[smtp]\nmax_message_bytes = -5\n", {}, "smtp.max_message_bytes", False),
    ("", {"POSTDESK_SMTP__MAX_MESSAGE_BYTES": "0"}, "smtp.max_message_bytes", True),
    ("[worker]\nbatch_size = 0\n", {}, "worker.batch_size", False),
    ("[outbound]\nport = 70000\n", {}, "outbound.port", False),
    ("[worker]\npoll_seconds = nan\n", {}, "worker.poll_seconds", False),
    ("[scheduler]\ninterval_seconds = inf\n", {}, "scheduler.interval_seconds", False),
    ("[lifecycle]\nreminder_days = [2, -1]\n", {}, "lifecycle.reminder_days", False),
])
def test_every_number_is_range_checked(tmp_path, serve_must_not_start, text, env, key, process):
    # In-process but for one real `python -m postdesk serve`: the check is the configuration's.
    path = tmp_path / "postdesk.toml"
    path.write_text(text)
    code, err = run(tmp_path, "--config", str(path), "serve", env=env, process=process)
    assert code == EX_CONFIG
    line = one_line(err)
    assert key in line and "between" in line
    assert not (tmp_path / "postdesk.db").exists()


# --- the store ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("tickets", "list"), ("serve",), ("quarantine", "list"),
                                  ("scheduler", "--once")])
def test_no_database_is_never_created_outside_init(tmp_path, args):
    # no config: the default ./postdesk.db; `serve` from a real process, which must not fork
    code, err = run(tmp_path, *args, process=args == ("serve",))
    assert code == EX_CONFIG
    assert "run `postdesk init`" in one_line(err)
    assert not (tmp_path / "postdesk.db").exists()
    assert list(tmp_path.iterdir()) == []


def test_ingest_before_init_keeps_the_mail_at_the_mta(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    code, err = run(tmp_path, "--config", str(config), "ingest", input=make_mail())
    assert code == EX_CONFIG
    assert "run `postdesk init`" in one_line(err)
    assert not (tmp_path / "desk.db").exists()


def test_ingest_into_an_empty_database_file_says_run_init(tmp_path):
    sqlite3.connect(tmp_path / "desk.db").close()  # a file, no tables
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    code, err = run(tmp_path, "--config", str(config), "ingest", input=make_mail())
    assert code == EX_CONFIG
    assert "run `postdesk init`" in one_line(err)


def test_init_creates_then_commands_work(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    assert run(tmp_path, "--config", str(config), "init")[0] == 0
    assert (tmp_path / "desk.db").exists()
    assert run(tmp_path, "--config", str(config), "ingest", input=make_mail())[0] == 0
    assert run(tmp_path, "--config", str(config), "tickets", "list")[0] == 0


def test_postgres_without_schema_says_run_init(pg_url):
    import sqlalchemy as sa

    name = pg_url.rsplit("/", 1)[1] + "_empty"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url.rsplit("/", 1)[0] + f"/{name}"
        folder = Path(__import__("tempfile").mkdtemp())
        config = write_config(folder, url)
        code, err = run(folder, "--config", str(config), "ingest", input=make_mail())
        assert code == EX_CONFIG and "run `postdesk init`" in one_line(err)
        code, err = run(folder, "--config", str(config), "tickets", "list")
        assert code == EX_CONFIG and "run `postdesk init`" in one_line(err)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# --- ingest and the size limit ---------------------------------------------------------------

def test_ingest_refuses_what_smtp_refuses(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    assert run(tmp_path, "--config", str(config), "init")[0] == 0
    big = make_mail(body=("y" * 76 + "\n") * 2000)
    assert len(big) > 100_000
    code, err = run(tmp_path, "--config", str(config), "ingest", input=big,
                    env={"POSTDESK_SMTP__MAX_MESSAGE_BYTES": "100KB"})
    assert code == EX_DATAERR
    line = one_line(err)
    assert "max_message_bytes" in line and str(len(big)) in line and "100000" in line
    count = sqlite3.connect(tmp_path / "desk.db").execute("SELECT count(*) FROM inbound")
    assert count.fetchone()[0] == 0


@pytest.mark.timeout(120)
def test_ingest_refuses_a_31_megabyte_mail_with_the_default_limit(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    assert run(tmp_path, "--config", str(config), "init")[0] == 0
    big = make_mail() + b"z" * (31_800_000)
    code, err = run(tmp_path, "--config", str(config), "ingest", input=big)
    assert code == EX_DATAERR and "max_message_bytes" in one_line(err)


# --- agents that can never be recognised ----------------------------------------------------

def test_agents_list_warns_when_no_agent_mail_can_be_recognised(tmp_path):
    config = write_config(tmp_path, "sqlite:///unused.db",
                          '[[agents]]\naddress = "alice@acme.example"\n')
    code, err = run(tmp_path, "--config", str(config), "agents", "list")
    assert code == 0
    assert "warning:" in err and "trusted_authserv_id" in err
    config = write_config(tmp_path, "sqlite:///unused.db",
                          '[agent_auth]\ntrusted_authserv_id = "mx.acme.example"\n'
                          '[[agents]]\naddress = "alice@acme.example"\n')
    code, err = run(tmp_path, "--config", str(config), "agents", "list")
    assert code == 0 and "warning" not in err


def test_doctor_fails_without_a_traceback_until_the_desk_is_sound(tmp_path):
    # What each line says is held by test_doctor.py; here: the real process and its exit code.
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    config = write_config(tmp_path, url, '[[agents]]\naddress = "alice@acme.example"\n')
    code, err = run(tmp_path, "--config", str(config), "doctor")
    assert code == 1 and "Traceback" not in err
    assert not (tmp_path / "desk.db").exists()
    assert run(tmp_path, "--config", str(config), "init")[0] == 0
    code, err = run(tmp_path, "--config", str(config), "doctor")
    assert code == 1 and "Traceback" not in err  # agents, but no trusted_authserv_id
    config = write_config(tmp_path, url, '[agent_auth]\ntrusted_authserv_id = "mx.acme.example"\n'
                          '[[agents]]\naddress = "alice@acme.example"\n')
    code, err = run(tmp_path, "--config", str(config), "doctor")
    assert code == 0 and err == ""


def test_ingest_into_an_older_schema_says_run_init(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}")
    assert run(tmp_path, "--config", str(config), "init")[0] == 0
    with sqlite3.connect(tmp_path / "desk.db") as db:  # as if a column came in a later version
        db.execute("DROP INDEX ix_inbound_peer_received")
        db.execute("ALTER TABLE inbound DROP COLUMN peer")
    code, err = run(tmp_path, "--config", str(config), "ingest", input=make_mail())
    assert code == EX_CONFIG and "older than this version" in one_line(err)
