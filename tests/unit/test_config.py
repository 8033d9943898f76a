"""Configuration: file, environment overrides, validation messages that name the key and the fix."""

import dataclasses
import typing
import re
from pathlib import Path

import pytest

from postdesk import config
from postdesk.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_match_the_issue():
    s = config.load(environ={})
    assert s.desk.address == "support@localhost"
    assert s.desk.domains == ("localhost",)
    assert s.desk.locale == "fr" and s.desk.tag == "[#{id}]"
    assert s.database.url == "sqlite:///postdesk.db"
    assert s.smtp.listen == "127.0.0.1:2525" and s.smtp.max_message_bytes == 25 * 1024 * 1024
    assert s.smtp.lmtp is False
    assert s.outbound.transport == "maildir" and s.outbound.folder == "./outbound"
    assert s.limits.auto_replies_per_address_per_hour == 10


def test_file_then_environment(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[desk]\naddress = "help@acme.test"\n[smtp]\nlmtp = true\n')
    s = config.load(path, environ={"POSTDESK_SMTP__LISTEN": "127.0.0.1:2424",
                                   "POSTDESK_SMTP__MAX_MESSAGE_BYTES": "10MB",
                                   "POSTDESK_DESK__DOMAINS": "acme.test, acme.example"})
    assert s.desk.address == "help@acme.test" and s.smtp.lmtp is True
    assert s.smtp.listen == "127.0.0.1:2424" and s.smtp.max_message_bytes == 10_000_000
    assert s.desk.domains == ("acme.test", "acme.example")
    assert s.source == str(path)


def test_config_env_variable_names_the_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[desk]\nname = "X"\n')
    assert config.load(environ={"POSTDESK_CONFIG": str(path)}).desk.name == "X"


@pytest.mark.parametrize("text, env, message", [
    ("[smtp]\nlmtp = 'maybe'\n", {}, "smtp.lmtp: must be true or false, got 'maybe'"),
    ("[desk]\ntag = '[#]'\n", {}, "desk.tag: '[#]' has no {id} placeholder"),
    ("[desk]\nadress = 'x@y'\n", {}, "desk.adress: is not a known setting"),
    ("[smtp]\nlisten = 'nowhere'\n", {}, "smtp.listen: 'nowhere' is not HOST:PORT"),
    ("", {"POSTDESK_SMPT__LISTEN": "x"}, "POSTDESK_SMPT__LISTEN: names an unknown section [smpt]"),
    ("[outbound]\ntransport = 'pigeon'\n", {}, "outbound.transport: 'pigeon' is not allowed"),
    ("[smtp]\nmax_message_bytes = 'lots'\n", {}, "smtp.max_message_bytes: must be a size"),
    ("[database]\nurl = 'mysql://x'\n", {}, "database.url: 'mysql://x' is not supported"),
    ("[desk\n", {}, "is not valid TOML"),
    ("[worker]\nnice = 25\n", {}, "worker.nice: 25 is outside 0..19"),
    ("[worker]\nprocesses = 0\n", {}, "worker.processes: 0 is below 1"),
    ("[worker]\nclaim_timeout_seconds = 0.5\n", {},
     "worker.claim_timeout_seconds: 0.5 is below 1 second"),
    ("[worker]\nprocesses = 2\n", {}, "worker.processes: 2 worker processes on SQLite"),
    ("[database]\nurl = 'postgresql+psycopg://u@h/d'\n[worker]\nprocesses = 2\n"
     "separate_process = false\n", {}, "worker.processes: 2 with separate_process = false"),
    ("[smtp]\nmax_connections = -1\n", {}, "smtp.max_connections: -1 is negative"),
])
def test_errors_name_the_key_and_the_fix(tmp_path, text, env, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ=env)
    assert message in str(caught.value)
    assert "(" in str(caught.value)  # a fix is suggested


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", environ={})


def test_every_key_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    for section in dataclasses.fields(config.Settings):
        if section.name == "source" or section.name in ("agents", "queues", "imap", "organisations"):
            continue
        assert f"## [{section.name}]" in doc, section.name
        for key in dataclasses.fields(section.default_factory()):
            assert re.search(rf"\| `{key.name}` \|", doc), f"{section.name}.{key.name}"


def _numeric_keys():
    tables = {f.name: f.type for f in dataclasses.fields(config.Settings) if f.name != "source"}
    hints = typing.get_type_hints(config.Settings)
    for section in tables:
        kind = hints[section]
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        for name, hint in typing.get_type_hints(kind).items():
            if typing.get_origin(hint) is tuple:
                hint = typing.get_args(hint)[0]
            if hint in (int, float, config.Bytes, config.Duration):
                yield f"{section}.{name}"


IMAP = '[[imap]]\nname = "m"\nhost = "h"\nusername = "u"\npassword_env = "P"\n'


def test_every_number_has_a_range():
    assert sorted(_numeric_keys()) == sorted(config._RANGES)


@pytest.mark.parametrize("key", sorted(config._RANGES))
def test_each_range_is_enforced_at_both_ends(tmp_path, key):
    low, high = config._RANGES[key]
    section, name = key.split(".")
    for bad in (low - 1, high * 2 + 1, "nan"):
        value = f"[{bad}]" if name == "reminder_days" else bad
        text = (f'{IMAP}{name} = {value}\n' if section == "imap"
                else f"[{section}]\n{name} = {value}\n")
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:  # out of range, or not a number at all
            config.load(path, environ={})
        assert caught.value.key == (f"imap[0].{name}" if section == "imap" else key) + (
            "[0]" if name == "reminder_days" else "")


def test_a_config_folder_or_latin1_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=rf"{re.escape(str(tmp_path))}: is a folder"):
        config.load(tmp_path, environ={})
    path = tmp_path / "p.toml"
    path.write_bytes('[desk]\nname = "Café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 \(byte 0xe9 at offset 18\)"):
        config.load(path, environ={})


@pytest.mark.parametrize("text, message", [
    ("[smtp]\nmax_message_bytes = -5\n", "smtp.max_message_bytes: -5 is not between 1000 and "),
    ("[worker]\nbatch_size = 0\n", "worker.batch_size: 0 is not between 1 and 100000"),
    ("[worker]\npoll_seconds = inf\n", "worker.poll_seconds: inf is not between 0.01 and 3600"),
    ("[lifecycle]\nreminder_days = [2, -1]\n", "lifecycle.reminder_days[1]: -1 is not between"),
    (IMAP + "port = 99999\n", "imap[0].port: 99999 is not between 0 and 65535"),
])
def test_out_of_range_names_the_key_and_the_range(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(path, environ={})


def test_every_range_is_documented():
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `") and " – " in line]
    for key, (low, high) in config._RANGES.items():
        found = [row for row in rows if f"`{key}`" in row]
        assert found, key
        assert f"| {config._number(low)} – {config._number(high)}" in found[0], key
