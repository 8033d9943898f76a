"""Configuration: file, environment overrides, validation messages that name the key and the fix."""

import dataclasses
import re
import typing
import warnings

import pytest

from postdesk import config
from postdesk.errors import ConfigError

IMAP = '[[imap]]\nname = "m"\nhost = "h"\nusername = "u"\npassword_env = "P"\n'


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
    ("[database]\nurl = 'sqlite3:///x.db'\n", {},
     "database.url: 'sqlite3:///x.db' is not supported (SQLite is opened through Python's"),
    ("[desk\n", {}, "is not valid TOML"),
    ("[worker]\nnice = 25\n", {}, "worker.nice: 25 is not between 0 and 19"),
    ("[worker]\nprocesses = 0\n", {}, "worker.processes: 0 is below 1"),
    ("[worker]\nclaim_timeout = 0.5\n", {}, "worker.claim_timeout: 0.5 is below 1 second"),
    ("[worker]\nclaim_timeout_seconds = 0.5\n", {},
     "worker.claim_timeout_seconds: 0.5 is below 1 second"),
    ("[worker]\nprocesses = 2\n", {}, "worker.processes: 2 worker processes on SQLite"),
    ("[database]\nurl = 'postgresql+psycopg://u@h/d'\n[worker]\nprocesses = 2\n"
     "separate_process = false\n", {}, "worker.processes: 2 with separate_process = false"),
    ("[smtp]\nmax_connections = -1\n", {}, "smtp.max_connections: -1 is negative"),
    ("[desk]\ntimezone = 'Mars/Base'\n", {}, "desk.timezone: 'Mars/Base' is not an IANA time zone"),
    ("[desk]\naddress = 'nobody'\n", {}, "desk.address: 'nobody' is not a mail address"),
    ("", {"POSTDESK_SMTP__LISTN": "x:1"}, "smtp.listn: is not a known setting"),
    ("", {"POSTDESK_IMAP__HOST": "h"}, "POSTDESK_IMAP__HOST: [[imap]] tables cannot be set"),
    ("desk = 5\n", {}, "desk: must be a table"),
    ("imap = 5\n", {}, "imap: must be a list of tables, got 5 (write each as a [[imap]] table)"),
    ("[[imap]]\nname = 'm'\n", {}, "imap[0].host: is missing"),
    ("[worker]\nbatch_size = 2.5\n", {}, "worker.batch_size: must be a whole number, got 2.5"),
    ("[worker]\nbatch_size = true\n", {}, "worker.batch_size: must be a number, got True"),
    ("[logging]\nlevel = 'verbose'\n", {}, "logging.level: 'VERBOSE' is not allowed"),
    ("[[agents]]\naddress = 'a@b.test'\nqueues = ['x']\n", {}, "agents[0].queues: names unknown"),
    ("source = 'x'\n", {}, "source: is not a known setting"),
    ("[desk]\nname = {a = 1}\n", {}, "desk.name: must be a string, got {'a': 1}"),
    ("[smtp]\nstore_timeout = '2 hours'\n", {}, "smtp.store_timeout: must be a duration"),
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



def test_the_settings_are_frozen():
    settings = config.load(environ={})
    with pytest.raises(Exception, match="frozen"):
        settings.desk = config.DeskSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.desk.name = "other"


def test_a_union_takes_the_type_of_the_value_not_its_first_member(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'{IMAP}sent = "Sent"\n')
    assert config.load(path, environ={}).imap[0].sent == "Sent"
    path.write_text(IMAP)
    assert config.load(path, environ={}).imap[0].sent is None
    path.write_text(f"{IMAP}sent = [1]\n")
    with pytest.raises(ConfigError, match=re.escape("imap[0].sent: must be a string, got [1]")):
        config.load(path, environ={})


def test_environment_values_are_toml_or_text(tmp_path):
    s = config.load(environ={"POSTDESK_DESK__NAME": "true", "POSTDESK_SMTP__LMTP": "yes",
                             "POSTDESK_ROUTING__URGENT_WORDS": '["a", "b c"]',
                             "POSTDESK_ATTACHMENTS__TYPES": "pdf, txt",
                             "POSTDESK_OUTBOUND__USERNAME": "12:30:00",
                             "POSTDESK_SURVEY__DELAY": "2h", "POSTDESK_WORKER__BATCH_SIZE": "7"})
    assert s.desk.name == "true" and s.smtp.lmtp is True
    assert s.routing.urgent_words == ("a", "b c") and s.attachments.types == ("pdf", "txt")
    assert s.outbound.username == "12:30:00"
    assert s.survey.delay == 7200 and s.worker.batch_size == 7


# --- durations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("written, seconds", [
    ("90", 90), ("2.5", 2.5), ('"90s"', 90), ('"15m"', 900), ('"2h"', 7200), ('"1d"', 86400),
    ('"1w"', 604800), ('"1.5h"', 5400), ('" 3 H "', 10800), ('"45"', 45),
])
def test_every_duration_is_seconds_or_a_string_with_a_unit(tmp_path, written, seconds):
    path = tmp_path / "c.toml"
    path.write_text(f"[outbound]\nretry_max = {written}\n[lifecycle]\nreopen_within = {written}\n"
                    f"reminders_after = [{written}]\n[survey]\ndelay = {written}\n")
    s = config.load(path, environ={})
    assert s.outbound.retry_max == s.lifecycle.reopen_within == s.survey.delay == seconds
    assert s.lifecycle.reminders_after == (seconds,)
    assert s.outbound.retry_max_seconds == seconds  # the old attribute, in its old unit
    assert s.lifecycle.reopen_days == pytest.approx(seconds / 86400)
    assert s.lifecycle.reminder_days == (pytest.approx(seconds / 86400),)


@pytest.mark.parametrize("written", ['"2 hours"', '"h"', '"-1h"', "true", "[1]", '"1y"'])
def test_a_duration_that_is_not_one_is_refused_with_its_key(tmp_path, written):
    path = tmp_path / "c.toml"
    path.write_text(f"[scheduler]\ninterval = {written}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    assert caught.value.key == "scheduler.interval" and caught.value.fix


def _base(kind):
    """The type of a key's value, or of each item of a list."""
    if typing.get_origin(kind) is tuple:
        kind = typing.get_args(kind)[0]
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def _duration_keys():
    for section, table in _tables():
        for name, info in config.fields(table).items():
            kind = _base(info.annotation)
            if kind is config.Duration:
                yield f"{section}.{name}"


def test_no_duration_key_carries_a_unit_and_every_old_name_is_still_read():
    keys = list(_duration_keys())
    assert len(keys) == 18, keys
    assert not [k for k in keys if k.endswith(("_seconds", "_days"))]
    old = {f"{s}.{o}": f"{s}.{n}" for s, t in _tables() for o, (n, _) in t.renamed.items()}
    assert set(old.values()) <= set(keys)
    assert len(old) == 15


# --- the deprecated names -----------------------------------------------------------------------

OLD_FILE = """\
[smtp]
store_timeout_seconds = 5
[outbound]
timeout_seconds = 12
retry_base_seconds = 0.2
retry_max_seconds = 0.5
poll_seconds = 0.2
[worker]
claim_timeout_seconds = 3600
poll_seconds = 0.1
commit_interval_seconds = 0
[lifecycle]
reminder_days = [1, 3.5]
resolve_after_days = 10
reopen_days = "12h"
[survey]
answer_days = 28
[scheduler]
interval_seconds = 1
[bounces]
stale_after_days = 0.5
[[imap]]
name = "m"
host = "h"
username = "u"
password_env = "P"
poll_seconds = 30
"""


def test_the_old_names_are_read_in_their_old_unit_with_a_deprecation_warning(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text(OLD_FILE)
    with pytest.warns(DeprecationWarning) as caught:
        s = config.load(path, environ={})
    notes = [str(w.message) for w in caught]
    assert len(notes) == 15 == len(s.deprecated)
    assert notes == list(s.deprecated)
    assert f'{path}: lifecycle.reminder_days is deprecated: write lifecycle.reminders_after = ' \
           f'["1d", "3.5d"] instead' in " ".join(notes)
    assert any("imap[0].poll_seconds is deprecated: write imap[0].poll_interval = 30" in n
               for n in notes)
    assert (s.smtp.store_timeout, s.outbound.timeout, s.outbound.retry_base) == (5, 12, 0.2)
    assert (s.outbound.retry_max, s.outbound.poll_interval) == (0.5, 0.2)
    assert (s.worker.claim_timeout, s.worker.poll_interval, s.worker.commit_interval) == (3600, 0.1, 0)
    assert s.lifecycle.reminders_after == (86400, 3.5 * 86400)
    assert (s.lifecycle.resolve_after, s.lifecycle.reopen_within) == (864000, 43200)
    assert (s.survey.answer_within, s.scheduler.interval) == (28 * 86400, 1)
    assert (s.bounces.stale_after, s.imap[0].poll_interval) == (43200, 30)
    # the attributes the code reads keep their names and units
    assert (s.smtp.store_timeout_seconds, s.outbound.timeout_seconds) == (5, 12)
    assert (s.worker.claim_timeout_seconds, s.worker.commit_interval_seconds) == (3600, 0)
    assert s.lifecycle.reminder_days == (1, 3.5) and s.lifecycle.reopen_days == 0.5
    assert (s.survey.answer_days, s.scheduler.interval_seconds) == (28, 1)
    assert (s.bounces.stale_after_days, s.imap[0].poll_seconds) == (0.5, 30)
    assert config.startup_warnings(s)[:15] == list(s.deprecated)


def test_the_new_names_give_no_warning(tmp_path):
    path = tmp_path / "new.toml"
    path.write_text('[worker]\npoll_interval = "100s"\n[lifecycle]\nreopen_within = "3d"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = config.load(path, environ={})
    assert s.deprecated == () and config.startup_warnings(s) == []
    assert s.worker.poll_seconds == 100 and s.lifecycle.reopen_days == 3


def test_an_old_name_in_the_environment_overrides_the_new_name_in_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[lifecycle]\nreopen_within = "3d"\n')
    with pytest.warns(DeprecationWarning, match="POSTDESK_LIFECYCLE__REOPEN_DAYS: lifecycle.reopen_days"):
        s = config.load(path, environ={"POSTDESK_LIFECYCLE__REOPEN_DAYS": "2"})
    assert s.lifecycle.reopen_days == 2


def test_an_error_names_the_key_where_the_value_came_from(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[worker]\npoll_seconds = 0.5\n")
    with pytest.raises(ConfigError, match="^worker.poll_interval: must be a duration, got 'x'"):
        config.load(path, environ={"POSTDESK_WORKER__POLL_INTERVAL": "x"})
    path.write_text("[worker]\npoll_interval = 0.5\n")
    with pytest.raises(ConfigError, match="^worker.poll_seconds: must be a duration, got 'x'"):
        config.load(path, environ={"POSTDESK_WORKER__POLL_SECONDS": "x"})


@pytest.mark.parametrize("text, message", [
    ("[lifecycle]\nreopen_days = 1\nreopen_within = 3\n",
     "lifecycle.reopen_days: is the old name of reopen_within, which is also set (keep only"),
    ("[lifecycle]\nreminder_days = [2, -1]\n",
     "lifecycle.reminder_days[1]: -1 is not between 0 and 3650 (write a value in that range)"),
    ("[bounces]\nstale_after_days = 0\n", "bounces.stale_after_days: 0 is not between 0.01 and 3650"),
    ("[worker]\npoll_seconds = 'often'\n", "worker.poll_seconds: must be a duration, got 'often'"),
    (IMAP + "poll_seconds = 0\n", "imap[0].poll_seconds: 0 is not between 0.01 and 86400"),
])
def test_an_error_on_an_old_name_names_it_in_its_unit(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(path, environ={})


def test_code_may_still_build_a_table_with_an_old_name():
    assert config.OutboundSettings(transport="smtp", timeout_seconds=5).timeout == 5
    assert config.LifecycleSettings(reopen_days=2).reopen_within == 2 * 86400
    assert dataclasses.replace(config.OutboundSettings(), timeout=3).timeout_seconds == 3


# --- every key: a type, a range for every number, a ConfigError for any wrong value ------------

def _tables():
    for section, kind in config.TABLES.items():
        yield section, config.LISTS.get(section, kind)


def _numeric_keys():
    for section, table in _tables():
        for name, info in config.fields(table).items():
            kind = _base(info.annotation)
            if kind in (int, float, config.Bytes, config.Duration):
                yield f"{section}.{name}", table, name


def test_every_number_has_a_range():
    keys = list(_numeric_keys())
    assert len(keys) == 38
    for key, table, name in keys:
        info = config.fields(table)[name]
        found = [m for m in info.metadata if isinstance(m, config.Between)] or [
            config.bounds(info.annotation)]
        assert found and found[0] is not None, key


@pytest.mark.parametrize("key, table, name", list(_numeric_keys()), ids=lambda v: str(v))
def test_each_range_is_enforced_at_both_ends(tmp_path, key, table, name):
    info = config.fields(table)[name]
    between = next((m for m in info.metadata if isinstance(m, config.Between)), None) or \
        config.bounds(info.annotation)
    section = key.split(".")[0]
    is_list = typing.get_origin(info.annotation) is tuple
    for bad in (between.low - 1, between.high * 2 + 1, "nan"):
        value = f"[{bad}]" if is_list else bad
        text = (f'{IMAP}{name} = {value}\n' if section == "imap"
                else f"[{section}]\n{name} = {value}\n")
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:  # out of range, or not a number at all
            config.load(path, environ={})
        assert caught.value.key == (f"imap[0].{name}" if section == "imap" else key) + (
            "[0]" if is_list else "")


def _every_key():
    for section, table in _tables():
        for name in config.fields(table):
            yield section, name


@pytest.mark.parametrize("wrong", ["{ a = 1 }", "[{ a = 1 }]", "1979-05-27", "-1e400", '"\\u0000"'])
def test_any_wrong_value_of_any_key_is_a_config_error_naming_it(tmp_path, wrong):
    """Hostile input: a table, a list of tables, a date or a control character where any key is
    expected ends in a ConfigError naming that key (or a value that is allowed), never in a
    pydantic error."""
    path = tmp_path / "c.toml"
    for section, name in _every_key():
        imap = "".join(f"{line}\n" for line in IMAP.splitlines() if not line.startswith(f"{name} ="))
        path.write_text(f"{imap}{name} = {wrong}\n" if section == "imap"
                        else f"[[{section}]]\n{name} = {wrong}\n" if section in config.LISTS
                        else f"[{section}]\n{name} = {wrong}\n")
        try:
            config.load(path, environ={})
        except ConfigError as exc:
            assert exc.key.startswith(section) and exc.fix, (section, name, str(exc))
            assert "pydantic" not in str(exc).lower() and "Input should" not in str(exc)
        else:
            assert not wrong.startswith(("{", "[{")), (section, name)  # no key takes a table


@pytest.mark.parametrize("wrong", ["[[1]]", "{ a = 1 }", "[", "1979-05-27T07:32:00Z", "-inf"])
def test_any_wrong_environment_value_is_a_config_error_naming_its_key(wrong):
    for section, name in _every_key():
        if section in config.LISTS:
            continue
        try:
            config.load(environ={f"POSTDESK_{section.upper()}__{name.upper()}": wrong})
        except ConfigError as exc:
            assert exc.key.startswith(f"{section}.{name}") and exc.fix, (section, name, str(exc))
            assert "Input should" not in str(exc)


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
    ("[worker]\npoll_interval = inf\n", "worker.poll_interval: inf is not between 0.01 and 3600"),
    ("[lifecycle]\nreminders_after = [2, -1]\n",
     "lifecycle.reminders_after[1]: -1 is not between 0 and 315360000"),
    (IMAP + "port = 99999\n", "imap[0].port: 99999 is not between 0 and 65535"),
])
def test_out_of_range_names_the_key_and_the_range(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(path, environ={})


def test_a_hand_built_configuration_is_checked_like_a_file():
    agent = config.AgentSettings("a@b.test", "A", queues=("nowhere",))
    with pytest.raises(ConfigError, match=re.escape("agents[0].queues: names unknown queue(s)")):
        config.Settings(agents=(agent,))
    unchecked = config.Settings().model_copy(update={"worker": config.WorkerSettings(processes=2)})
    with pytest.raises(ConfigError, match="worker.processes: 2 worker processes on SQLite"):
        config.validate(unchecked)
    assert config.validate(config.Settings()) == config.Settings()
