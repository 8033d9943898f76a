"""One frozen settings object, built once from a TOML file and the environment, validated at start.

Where the file comes from: ``--config PATH``, else ``$POSTDESK_CONFIG``, else ``./postdesk.toml``,
else the built-in defaults. Every key ``[section] key`` of a table can be overridden by the
environment variable ``POSTDESK_<SECTION>__<KEY>`` (its value read as TOML when it parses as
TOML, else as a plain string). The whole configuration is one typed schema: the pydantic
dataclasses below, one per table, gathered in :class:`Settings` (pydantic-settings), which
merges the two sources (the environment first) and converts and checks every value. A wrong
value stops start-up with a :class:`ConfigError` that names the key and says how to fix it, never
a pydantic traceback. The object is passed to constructors, never imported as a global.

Durations follow one convention: a number of seconds, or a string with a unit (``"90s"``,
``"15m"``, ``"2h"``, ``"1d"``). The keys once named ``*_seconds`` or ``*_days`` have unit-free
names now; the old names are still read, with a :class:`DeprecationWarning` and a line of
:func:`startup_warnings`, and the old attribute names stay readable in their old unit.

``docs/configuration.md``'s tables are generated from this schema: ``python scripts/config_docs.py``.
"""

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
import warnings
import zoneinfo
from contextvars import ContextVar
from importlib.util import find_spec
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic import field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs, PydanticCustomError, core_schema
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from postdesk.errors import ConfigError

ENV_PREFIX = "POSTDESK_"
_DAY, _MANY = 86400, 10**9
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": _DAY, "w": 7 * _DAY}


# --- the value types ----------------------------------------------------------------------------

def _fail(problem: str, fix: str) -> PydanticCustomError:
    """A check's verdict, turned into a ConfigError naming the key by :func:`_explain`."""
    return PydanticCustomError("postdesk", "{problem}", {"problem": problem, "fix": fix})


class Bytes(int):
    """An integer size in bytes that may be written ``"25MB"``, ``"500KB"`` or ``"10MiB"``."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(cls.parse)

    @classmethod
    def parse(cls, value: Any) -> "Bytes":
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        match = _SIZE.match(str(value)) if isinstance(value, (str, float)) else None
        if not match:
            raise _fail(f"must be a size, got {value!r}", 'write bytes or e.g. "25MB", "500KB"')
        return cls(int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]))


class Duration(float):
    """Seconds, written as a number of seconds or with a unit: ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(cls.parse)

    @classmethod
    def parse(cls, value: Any) -> "Duration":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(value)  # a negative number, NaN or infinity is refused by its range
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise _fail(f"must be a duration, got {value!r}",
                        'write seconds or e.g. "90s", "15m", "2h", "1d"')
        return cls(float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


@dataclasses.dataclass(frozen=True)
class Between:
    """The range of a number, bounds included; NaN and infinity are in none. ``below`` replaces
    the problem for a value under ``low`` (``{value}`` is the value), ``fix`` the advice."""

    low: float
    high: float
    below: str = ""
    fix: str = "write a value in that range"

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        checked = core_schema.no_info_after_validator_function(self.check, handler(source))
        return core_schema.no_info_before_validator_function(_not_a_bool, checked)

    def check(self, value: float) -> float:
        if self.low <= value <= self.high:
            return value
        if self.below and value < self.low:
            raise _fail(self.below.format(value=_number(value)), self.fix)
        raise PydanticCustomError("out_of_range", "{problem}", {
            "problem": self.problem(value), "fix": self.fix, "value": value})

    def problem(self, value: float, unit: float = 1) -> str:
        return (f"{_number(value / unit)} is not between {_number(self.low / unit)} and "
                f"{_number(self.high / unit)}")


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise _fail(f"must be a number, got {value!r}", "write a number")
    return value


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(int(value)) if isinstance(value, int) else f"{value:g}"


def _list(value: Any) -> Any:
    """A list may be written ``"a, b"``, and a single value alone."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _mail_address(example: str):
    def check(value: str) -> str:
        if value.count("@") != 1:
            raise _fail(f"{value!r} is not a mail address", f'write it as "{example}"')
        return value
    return check


def _tag(value: str) -> str:
    if "{id}" not in value:
        raise _fail(f"{value!r} has no {{id}} placeholder", 'write it like "[#{id}]" or "[ACME #{id}]"')
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(f"{value!r} is not an IANA time zone name", 'write e.g. "Europe/Paris" or "UTC"') \
            from None
    return value


def _listen(value: str) -> str:
    host, _, port = value.rpartition(":")
    if value and (not host or not port.isdigit() or not 0 <= int(port) < 65536):
        raise _fail(f"{value!r} is not HOST:PORT", 'write e.g. "127.0.0.1:2525"')
    return value


SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
"""The SQLite URLs postdesk opens: through Python's sqlite3, whose dialect begins postdesk's
write transactions with ``BEGIN IMMEDIATE`` (:mod:`postdesk.store.db`)."""


def _database_url(value: str) -> str:
    scheme = value.partition(":")[0]
    if not (scheme in SQLITE_SCHEMES or scheme.startswith("postgresql")):
        raise _fail(f"{value!r} is not supported",
                    'use "sqlite:///PATH" or "postgresql+psycopg://USER@HOST/DB"'
                    if not scheme.startswith("sqlite") else
                    'SQLite is opened through Python\'s sqlite3: use "sqlite:///PATH"')
    if value.startswith("postgresql") and find_spec("psycopg") is None:
        raise _fail("PostgreSQL needs psycopg, which is not installed", "pip install 'postdesk[postgres]'")
    return value


Words = Annotated[tuple[str, ...], BeforeValidator(_list)]


def _text(check) -> Any:
    """A string checked by ``check``."""
    return Annotated[str, AfterValidator(check)]


def Count(low: int, high: int, **message: str) -> Any:  # noqa: N802 (a type)
    return Annotated[int, Between(low, high, **message)]


def Number(low: float, high: float, **message: str) -> Any:  # noqa: N802
    return Annotated[float, Between(low, high, **message)]


def Size(low: int, high: int) -> Any:  # noqa: N802
    return Annotated[Bytes, Between(low, high)]


def Seconds(low: float, high: float, **message: str) -> Any:  # noqa: N802
    return Annotated[Duration, Between(low, high, **message)]


# --- the tables ---------------------------------------------------------------------------------

# A key's docstring is its meaning in docs/configuration.md (scripts/config_docs.py reads them;
# pydantic's use_attribute_docstrings would parse this file again at every start).
_TABLE = ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_default=True)


def _table(renamed: Mapping[str, tuple[str, float]] | None = None):
    """A frozen pydantic dataclass for one table. ``renamed`` maps a deprecated key to its new
    name and the seconds in one unit of its old value: the old name stays a read-only attribute
    in its old unit, and a constructor argument."""
    def make(cls: type) -> type:
        cls.renamed = dict(renamed or {})
        for old, (new, unit) in cls.renamed.items():
            read = attrgetter(new) if unit == 1 else (
                lambda self, new=new, unit=unit: _in_unit(getattr(self, new), unit))
            setattr(cls, old, property(read, doc=f"Deprecated: ``{new}`` in units of {unit:g} s."))
        if renamed:
            cls._accept_old_names = model_validator(mode="before")(classmethod(_accept_old_names))
        return dataclass(frozen=True, config=_TABLE)(cls)
    return make


def _in_unit(value: Any, unit: float) -> Any:
    return value / unit if value.__class__ is not tuple else tuple(v / unit for v in value)


def _accept_old_names(cls: type, data: Any) -> Any:
    """Constructor arguments by a deprecated name (``OutboundSettings(timeout_seconds=5)``)."""
    kwargs = data.kwargs if isinstance(data, ArgsKwargs) else data
    if not isinstance(kwargs, dict) or not set(kwargs) & set(cls.renamed):
        return data
    kwargs = dict(kwargs)
    for old, (new, unit) in cls.renamed.items():
        if old in kwargs:
            if new in kwargs:
                raise _fail(f"both {old} and its new name {new} are set", f"keep only {new}")
            kwargs[new] = _scaled(kwargs.pop(old), unit)
    return ArgsKwargs(data.args, kwargs) if isinstance(data, ArgsKwargs) else kwargs


def _scaled(value: Any, unit: float) -> Any:
    """An old value in its old unit (``reopen_days = 7``), in seconds; text with a unit as is."""
    if isinstance(value, list | tuple):
        return [_scaled(v, unit) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and unit != 1:
        return value * unit
    return value


@_table()
class DeskSettings:
    name: str = "Support"
    """The desk's display name, in the From of every mail postdesk sends."""
    address: _text(_mail_address("support@example.com")) = "support@localhost"
    """The support address: From and Reply-To of outbound mail."""
    domains: Words = ()
    """Recipient domains accepted at RCPT; anything else gets `550 5.1.1` (never an open relay).
    Addresses in these domains are the desk's own and never become participants. Empty: the
    address's domain."""
    locale: Literal["fr", "en"] = "fr"
    """Language of mail when neither the contact, the mail's `Content-Language` nor its detected
    language says otherwise."""
    tag: _text(_tag) = "[#{id}]"
    """Subject tag format; must contain `{id}`. Give each desk its own (`"[ACME #{id}]"`) so two
    desks never take each other's mail."""
    history_address: str = ""
    """An extra address that answers with the sender's ticket history (see
    [reports.md](reports.md), "Ticket history by mail")."""
    timezone: _text(_timezone) = "UTC"
    """The desk's time zone, an IANA name (`"Europe/Paris"`, `"America/Montreal"`). Times are
    stored in UTC and shown in this zone, labelled with its abbreviation or offset: in mail
    (`\\|datetime` gives `8 décembre 2026 à 06:00 CET`, dates such as a reminder's resolution day
    are days of this zone, `Date:` carries its offset) and in the CLI (`2026-12-08 06:00 CET`;
    JSON: ISO-8601 with the offset). A name the system does not know stops start-up (exit 78)."""

    @field_validator("domains")
    @classmethod
    def _default_domain(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        address = info.data.get("address", "")
        return tuple(d.lower() for d in value) or (address.rpartition("@")[2].lower(),)


@_table()
class DatabaseSettings:
    url: _text(_database_url) = "sqlite:///postdesk.db"
    """`sqlite:///PATH` (one machine; WAL mode) or `postgresql+psycopg://USER@HOST:PORT/DB`
    (several processes or machines; needs the extra `postdesk[postgres]`, else start-up stops with
    one line naming it, exit 78)."""
    echo: bool = False
    """Log every SQL statement (debugging only)."""


@_table({"store_timeout_seconds": ("store_timeout", 1)})
class SmtpSettings:
    listen: _text(_listen) = "127.0.0.1:2525"
    """`HOST:PORT` of the SMTP (or LMTP) server of `postdesk serve`. Port 0 picks a free port."""
    max_message_bytes: Size(1000, 2**31 - 1) = Bytes(25 * 1024 * 1024)
    """Larger mails are refused with `552 5.3.4` (also when announced with `SIZE=`), and by
    `postdesk ingest` with exit 65 and the mail's size (an MTA's pipe then bounces it)."""
    max_bytes_in_flight: Size(0, 2**40) = Bytes(64 * 1024 * 1024)
    """The bytes of mail the SMTP edge may hold in memory at once (mails being received or
    waiting for their commit). A sender whose `SIZE=` does not fit is answered `452 4.3.1` at
    `MAIL` (or at `DATA`) after waiting up to 10 s for room; a mail without `SIZE=` that outgrows
    the room left is read to its end, dropped and answered `452 4.3.1`; the sender retries later.
    A mail alone always fits, whatever its size. `0`: no limit."""
    lmtp: bool = False
    """Speak LMTP (RFC 2033) instead of SMTP, for delivery from Postfix or another MTA."""
    hostname: str = ""
    """Name in the greeting and EHLO reply. Empty: the machine's name."""
    max_connections: Count(0, 100_000, below="{value} is negative",
                           fix="write how many SMTP connections may be open at once, "
                               "or 0 for no limit") = 100
    """SMTP (or LMTP) connections open at once. One more is answered `421 4.3.2 Too many
    connections, try again later` and closed before its greeting, so a flood of connections
    cannot take the edge's sockets and memory; the sender retries later. `0`: no limit."""
    store_timeout: Seconds(0.1, 3600) = Duration(10)
    """A mail whose commit takes longer (a hung database) is answered `451 4.3.0` so the sender
    retries. A mail still queued then is not stored; one already in its commit is kept if the
    commit lands, and the sender's retry is discarded as a duplicate (docs/reliability.md, "Parts
    that break")."""
    store_writers: Count(1, 16, below="{value} is below 1",
                         fix="write how many threads commit accepted mails (1 by default)") = 1
    """Threads that commit accepted mails on PostgreSQL, each a batch of the mails that arrived
    together: with 2 or more, while one commit waits for the disk the next batch is written at
    once instead of a whole commit later. That pays where a commit's `fsync` is long against the
    edge's CPU per mail; on a 2-core machine with a fast disk (0.24 ms) a second writer cost
    accepted mails per second and did not shorten the p99 (docs/performance.md, round V). On
    SQLite, which has one writer at a time, there is always one."""


@_table({"timeout_seconds": ("timeout", 1), "retry_base_seconds": ("retry_base", 1),
         "retry_max_seconds": ("retry_max", 1), "poll_seconds": ("poll_interval", 1)})
class OutboundSettings:
    transport: Literal["maildir", "smtp"] = "maildir"
    """`maildir`: write every outbound mail into a Maildir folder (embedded default, tests).
    `smtp`: deliver through a relay."""
    folder: str = "./outbound"
    """The Maildir (with `new/`, `cur/`, `tmp/`) for `transport = "maildir"`."""
    host: str = "localhost"
    """Relay host for `transport = "smtp"`."""
    port: Count(1, 65535) = 25
    """Relay port."""
    starttls: bool = False
    """Upgrade the relay connection with STARTTLS (certificate verified)."""
    tls: bool = False
    """Connect with implicit TLS (port 465 style)."""
    username: str = ""
    """Relay login; empty for none."""
    password_env: str = ""
    """Name of the environment variable holding the relay password."""
    timeout: Seconds(0.1, 3600) = Duration(30)
    """Relay connection and command timeout."""
    max_attempts: Count(1, 1000) = 8
    """Temporary failures are retried up to this many attempts, then the mail is `failed`."""
    retry_base: Seconds(0, 7 * _DAY) = Duration(60)
    """First retry delay; doubles at each attempt."""
    retry_max: Seconds(0, 7 * _DAY) = Duration(3600)
    """Longest delay between attempts."""
    poll_interval: Seconds(0.01, 3600) = Duration(2)
    """How often the sender looks for due retries when nothing wakes it."""


@_table()
class LimitsSettings:
    auto_replies_per_address_per_hour: Count(0, _MANY) = 10
    """At most this many automatic mails (acknowledgements, reminders…) to one address per hour;
    more are suppressed and recorded as events."""
    auto_replies_per_address_per_day: Count(0, _MANY) = 40
    """… and per day (Znuny's limit)."""
    auto_replies_per_ticket: Count(0, _MANY) = 10
    """At most this many automatic mails to one recipient of one ticket …"""
    auto_replies_ticket_window: Seconds(0, 365 * _DAY) = Duration(600)
    """… within this window (Zammad's limit)."""
    inbound_per_sender: Count(1, _MANY) = 20
    """More mails than this from one sender within `inbound_window` are quarantined as a flood
    instead of opening tickets (agents are exempt). The sender is the From address; for a mail
    without From, the envelope sender (as given at `MAIL FROM`), else the peer's IP address."""
    inbound_window: Seconds(0, 365 * _DAY) = Duration(3600)
    """The window of `inbound_per_sender`."""


@_table()
class AttachmentSettings:
    max_files: Count(0, 10_000) = 5
    """Files kept per message; the rest are refused (rule `count`)."""
    max_bytes: Size(0, 2**40) = Bytes(500 * 1000)
    """Larger files are refused (rule `size`)."""
    types: Words = ("csv", "tsv", "xlsx", "doc", "docx", "pdf", "txt", "jpg", "png", "gif", "mp4",
                    "mov", "har")
    """Accepted file extensions (rule `type`)."""
    check_content: bool = True
    """Also check the bytes: a binary type must look like what its name says (a `.pdf` must be a
    PDF), a text type must be text."""


@_table()
class StoreSettings:
    blob_dir: str = ""
    """Folder for raw mails and attachments as content-addressed files. Empty: they stay in the
    database (the right choice when several machines share PostgreSQL without shared storage)."""


@_table({"claim_timeout_seconds": ("claim_timeout", 1), "poll_seconds": ("poll_interval", 1),
         "commit_interval_seconds": ("commit_interval", 1)})
class WorkerSettings:
    batch_size: Count(1, 100_000) = 50
    """Stored mails claimed at once by the worker."""
    max_attempts: Count(1, 1000) = 5
    """A mail whose processing stopped the worker this many times is quarantined instead of
    retried."""
    claim_timeout: Seconds(1, _DAY, below="{value} is below 1 second",
                           fix="write how long a claim may go unrenewed before its worker is "
                               "taken for dead (60 by default; a live worker renews it four "
                               "times as often)") = Duration(60)
    """A claim not renewed for this long is given back to the queue: its worker died on another
    machine (a running worker renews its claims four times per timeout, however long a mail
    takes; a dead process of this host loses them at once). Other workers stop waiting for the
    mail it held after this long too. A worker that begins no mail for this long stops renewing
    (it is taken for stuck). Give every worker of one database the same value, and keep the
    machines' clocks in sync (NTP)."""
    poll_interval: Seconds(0.01, 3600) = Duration(1)
    """How often an idle worker looks for mail stored by other processes (`postdesk ingest`,
    other gateways); mail accepted by the same process wakes it at once."""
    separate_process: bool = True
    """`serve` runs the worker, the sender and the scheduler in a child process it supervises
    (restarted if it dies), so processing uses the second core and never delays SMTP replies;
    `false` runs them as threads of the one process."""
    processes: Count(1, 256, below="{value} is below 1",
                     fix="write how many worker processes serve runs (1 or more)") = 1
    """Worker processes `serve` runs, each a child it supervises with its own sender; the first
    also runs the scheduler. PostgreSQL only (on SQLite the writers take turns, so a second
    worker adds little: 1.08× measured), and only with `separate_process = true`. Two processes
    on PostgreSQL processed 1.96× what one did on a 2-core machine (docs/performance.md, round
    I); more need the cores. Workers on other machines are `serve --no-smtp --no-sender
    --no-scheduler` with the same configuration."""
    commit_interval: Seconds(0, 3600) = Duration(0.05)
    """The worker processes a claimed batch in shared transactions (a savepoint per mail only
    once one of them fails) and commits at least this often; `0` commits after every mail.
    Longer saves commits, shorter keeps SQLite's write lock free for the SMTP edge."""
    nice: Count(0, 19, fix="write 0 (same priority as the SMTP edge) up to 19 (lowest)") = 10
    """How much lower the processing process's CPU priority is than the SMTP edge's (an `os.nice`
    increment; `0` keeps them equal). When the machine is short of CPU, a client waiting for its
    250 goes first and processing catches up after the burst; with `separate_process = false` it
    has no effect."""


@_table({"reminder_days": ("reminders_after", _DAY), "resolve_after_days": ("resolve_after", _DAY),
         "reopen_days": ("reopen_within", _DAY)})
class LifecycleSettings:
    on_agent_reply: Literal["pending", "open"] = "pending"
    """Status after an agent's public reply (`pending` starts the reminder clock, or `open`)."""
    reminders_after: Annotated[tuple[Seconds(0, 3650 * _DAY), ...], BeforeValidator(_list)] = (
        Duration(2 * _DAY), Duration(5 * _DAY))
    """Reminders to the customer while a ticket is pending, this long after it became pending
    (J+2, J+5); each item is in the range."""
    resolve_after: Seconds(0, 3650 * _DAY) = Duration(10 * _DAY)
    """A pending ticket without answer is resolved with reason `no_response` (J+10)."""
    reopen_within: Seconds(0, 3650 * _DAY) = Duration(7 * _DAY)
    """A customer reply within this long of resolution reopens the ticket; later it opens a
    follow-up ticket."""


@_table({"answer_days": ("answer_within", _DAY)})
class SurveySettings:
    enabled: bool = True
    """Send a satisfaction survey after a ticket is resolved."""
    delay: Seconds(0, 365 * _DAY) = Duration(_DAY)
    """Wait this long after resolution before sending it: the customer gets the resolution alone,
    and a reply that reopens the ticket in the meantime cancels the survey. `0` sends it at the
    scheduler's next run."""
    after_no_response: bool = True
    """Also survey tickets resolved because the customer never answered."""
    scale: Literal["1-7", "good-bad"] = "1-7"
    """`1-7` (6–7 satisfied) or `good-bad` ("Bonne, je suis satisfait(e)" / "Mauvaise, je suis
    mécontent(e)")."""
    satisfied_from: Count(1, 7) = 6
    """On the 1–7 scale, the lowest satisfied score."""
    answer_within: Seconds(0, 3650 * _DAY) = Duration(28 * _DAY)
    """Answers are taken this long after the survey; the last one counts."""
    review_address: str = ""
    """Low scores are sent here with the comment (`survey_review_alert`); empty: only an event."""


@_table({"interval_seconds": ("interval", 1)})
class SchedulerSettings:
    enabled: bool = True
    """`postdesk serve` runs the sweeps too; set `false` when a separate `postdesk scheduler`
    daemon runs them."""
    interval: Seconds(0.01, _DAY) = Duration(60)
    """Time between two runs of each sweep."""
    batch_size: Count(1, 100_000) = 500
    """Due tickets claimed per transaction in a sweep."""


@_table()
class RoutingSettings:
    default_queue: str = "default"
    """Queue of a new ticket that no `[[queues]]` rule claims."""
    urgent_words: Words = ("urgent", "urgence", "bloquant", "production down", "en panne",
                           "critical", "critique")
    """A whole word or phrase of these in the subject or text makes a new ticket `urgent`."""
    high_words: Words = ("asap", "important", "rapidement", "au plus vite")
    """… makes it `high`. `X-Priority: 1` gives `urgent`, `2` or `Importance: high` gives `high`,
    `4`/`5` or `Importance: low` gives `low`."""


@_table({"stale_after_days": ("stale_after", _DAY)})
class BounceSettings:
    threshold: Number(1, 1000) = 3.0
    """The score at which the desk stops mailing the address (acknowledgements, reminders,
    surveys, relayed replies) until `postdesk contacts clear ADDRESS`."""
    stale_after: Seconds(864, 3650 * _DAY) = Duration(7 * _DAY)
    """A score whose last failure is older than this starts again from 0."""


@_table()
class LoggingSettings:
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    """In any case; `--log-level` overrides it."""
    redact_addresses: bool = True
    """Every mail address in a log line (of every level, in its arguments and tracebacks, in
    `serve`'s processes and every command) is written `addr:` and the first 8 hex digits of the
    SHA-256 of the lower-cased address: the same address always gives the same pseudonym, so one
    person's lines can be followed without the log holding their address. To find them:
    `printf %s alice@example.com \\| sha256sum \\| cut -c1-8`. A Message-ID written
    `message_id=<…>` is kept (a mail can still be looked up); other Message-IDs in a line are
    redacted like addresses. `false` writes addresses in clear (debugging)."""
    format: Literal["text", "json"] = "text"
    """`"text"`: one line per record, `TIME LEVEL LOGGER: MESSAGE`. `"json"`: one JSON object per
    line (ASCII, so no line break inside), with `time` (ISO 8601, UTC), `level`, `logger` and
    `message` (the traceback appended to it), and, on the lines about one mail, `inbound` (its id
    in `postdesk quarantine` and the `inbound` table: on the accepted, processed, discarded,
    quarantined and waiting lines), `ticket` (processed, and each notification sent) and `step`
    (the step it stopped at: discarded, quarantined, waiting). Addresses are redacted before the
    line is serialised, as in text. Both go to stderr."""


@_table()
class MetricsSettings:
    listen: _text(_listen) = ""
    """`HOST:PORT` where `serve` and `postdesk scheduler` answer `GET /healthz`, `/readyz` and
    `/metrics` (Prometheus text) over plain HTTP, e.g. `"127.0.0.1:9325"`; empty: off. Anyone who
    reaches it reads the desk's figures (no addresses): keep it on loopback or a private network.
    A port in use stops start-up with one line (exit 1). See docs/operations.md."""


@_table()
class AgentAuthSettings:
    required: bool = True
    """Agent mail must carry an `Authentication-Results` header of the trusted server with a
    pass. `false` is for development only."""
    trusted_authserv_id: str = ""
    """The authserv-id of the receiving server whose `Authentication-Results` headers are
    trusted. Only its topmost block of headers is read; an unreadable one proves nothing. Its
    `dmarc=fail` also refuses a customer's `#close`. That server must strip inbound headers
    bearing this name (docs/agents.md, docs/security.md). With `[[agents]]`, `required = true`
    and this empty, no agent's mail can be recognised (except from an `[[imap]]` mailbox's Sent
    folder): `serve` logs a WARNING at start and `postdesk agents list` prints it."""


@_table()
class AgentSettings:
    address: str
    """The agent's mail address."""
    name: str = ""
    """The agent's name."""
    queues: Words = ()
    """The queues the agent works on (names of `[[queues]]` or `[routing] default_queue`): told
    of an unassigned ticket of one of them when the queue has no `notify` list."""


@_table()
class QueueSettings:
    name: str
    """The queue's name."""
    addresses: Words = ()
    """Mail to one of these addresses goes to this queue."""
    keywords: Words = ()
    """Words of the subject or text that send a new ticket to this queue."""
    languages: Words = ()
    """Detected languages (`fr`, `en`…) that send a new ticket to this queue."""
    notify: Words = ()
    """Addresses told of this queue's unassigned tickets (else its agents, else every agent;
    docs/agents.md)."""


@_table()
class OrganisationSettings:
    name: str
    """The organisation's name (organisations can also be added with `postdesk orgs add`)."""
    domains: Words = ()
    """Contacts with an address in these domains belong to it."""
    admins: Words = ()
    """Addresses that see all of its tickets."""


@_table({"poll_seconds": ("poll_interval", 1)})
class ImapSettings:
    name: str
    """The mailbox's name in logs and `postdesk imap`."""
    host: str
    """The IMAP server."""
    username: str
    """The login."""
    password_env: str
    """Name of the environment variable holding the password."""
    port: Count(0, 65535) = 0
    """`0`: 993 for `tls`, 143 otherwise."""
    security: Literal["tls", "starttls", "none"] = "tls"
    """How the connection is protected."""
    inbox: str = "INBOX"
    """The folder read for new mail."""
    sent: str | None = None
    """The shared mailbox's Sent folder, read too: what an agent sent from a mail client counts
    as the agent's reply (docs/agents.md); none: not read."""
    processed: str | None = None
    """A folder the mail is moved to once handed over (created if missing); none: the mail is
    flagged `\\Seen` and `$Postdesk` and stays in the inbox."""
    idle: bool = True
    """Wait for new mail with IDLE when the server offers it (else poll)."""
    poll_interval: Seconds(0.01, _DAY) = Duration(60)
    """How often the mailbox is read when IDLE is off or not offered; with a `sent` folder, IDLE
    is also left at least this often to read it."""


# --- the whole configuration --------------------------------------------------------------------

class Settings(BaseSettings):
    """The whole configuration. ``Settings(...)`` builds it from its arguments alone; :func:`load`
    from the file and the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    desk: DeskSettings = Field(default_factory=DeskSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    survey: SurveySettings = Field(default_factory=SurveySettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    bounces: BounceSettings = Field(default_factory=BounceSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    agent_auth: AgentAuthSettings = Field(default_factory=AgentAuthSettings)
    agents: tuple[AgentSettings, ...] = ()
    queues: tuple[QueueSettings, ...] = ()
    imap: tuple[ImapSettings, ...] = ()
    organisations: tuple[OrganisationSettings, ...] = ()
    source: str = "built-in defaults"  # not a key: where the configuration was read from
    deprecated: tuple[str, ...] = ()  # not a key: the deprecated names it used, and their fix

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        """The arguments first; then, within :func:`load`, the environment it was given, then
        the file. Never ``os.environ`` or a ``.env`` file behind the caller's back."""
        return (init_settings, *_LOADING.get())

    @model_validator(mode="after")
    def _check_across_tables(self) -> "Settings":
        _check_workers(self)
        _check_agents(self)
        return self

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.smtp.listen.rpartition(":")
        return host.strip("[]"), int(port)


_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("_LOADING", default=())
NOT_KEYS = ("source", "deprecated")
TABLES = {name: f.annotation for name, f in Settings.model_fields.items() if name not in NOT_KEYS}
LISTS = {name: typing.get_args(kind)[0] for name, kind in TABLES.items()
         if typing.get_origin(kind) is tuple}  # [[agents]], [[queues]], [[imap]], [[organisations]]


def _check_workers(settings: Settings) -> None:
    processes = settings.worker.processes
    if processes == 1:
        return
    if settings.database.url.startswith("sqlite"):
        raise ConfigError("worker.processes", f"{processes} worker processes on SQLite",
                          "SQLite has one writer at a time, so more workers add nothing: "
                          "write 1, or use PostgreSQL")
    if not settings.worker.separate_process:
        raise ConfigError("worker.processes", f"{processes} with separate_process = false",
                          "the workers run as processes: set separate_process = true, or write 1")


def _check_agents(settings: Settings) -> None:
    queues = {q.name for q in settings.queues} | {settings.routing.default_queue}
    for i, agent in enumerate(settings.agents):
        if agent.address.count("@") != 1:
            raise ConfigError(f"agents[{i}].address", f"{agent.address!r} is not a mail address",
                              'write it as "alice@example.com"')
        unknown = [q for q in agent.queues if q not in queues]
        if unknown:
            raise ConfigError(f"agents[{i}].queues", f"names unknown queue(s) {unknown}",
                              f"define them in [[queues]] or use one of {sorted(queues)}")


def locate(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    """The configuration file to read, by the documented order, or None for built-in defaults."""
    if path:
        return Path(path)
    if environ.get("POSTDESK_CONFIG"):
        return Path(environ["POSTDESK_CONFIG"])
    local = Path("postdesk.toml")
    return local if local.exists() else None


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Read the file and the environment, convert and validate the whole configuration."""
    environ = os.environ if environ is None else environ
    file = locate(path, environ)
    in_file = FileSource(Settings, file)  # its errors first, as the file is read first
    in_environment = EnvironmentSource(Settings, environ)
    sources = (in_environment, in_file)  # the environment wins
    renamed = {loc: old for loc, old in in_file.renamed.items()  # an error names the key as written
               if loc[-1] not in in_environment.data.get(loc[0], {})}
    renamed.update(in_environment.renamed)
    deprecated = tuple(note for source in sources for note in source.deprecated)
    loading = _LOADING.set(sources)
    try:
        settings = Settings(source=str(file) if file else "built-in defaults", deprecated=deprecated)
    except ValidationError as exc:
        raise _explain(exc.errors()[0], renamed) from None
    finally:
        _LOADING.reset(loading)
    for note in deprecated:
        warnings.warn(note, DeprecationWarning, stacklevel=2)
    return settings


def validate(settings: Settings) -> Settings:
    """Check a settings object built by hand as :func:`load` checks a file."""
    try:
        return Settings.model_validate(settings.model_dump(round_trip=True))
    except ValidationError as exc:
        raise _explain(exc.errors()[0], {}) from None


def startup_warnings(settings: Settings) -> list[str]:
    """What is allowed but almost surely not meant: ``serve`` logs these at start and
    ``postdesk agents list`` prints them. The deprecated names come first."""
    return list(settings.deprecated) + agent_warnings(settings)


def agent_warnings(settings: Settings) -> list[str]:
    """What makes the agents' mail unrecognisable or too easily trusted."""
    auth = settings.agent_auth
    if not settings.agents:
        return []
    if not auth.required:
        return ["[agent_auth] required = false: any mail with an agent's From runs commands; "
                "use this for development only"]
    if not auth.trusted_authserv_id:
        return ["[agent_auth] trusted_authserv_id is empty: no mail can be recognised as an "
                "agent's except from an [[imap]] mailbox's Sent folder; set it to the "
                "authserv-id of the server that adds Authentication-Results to your mail"]
    return []


# --- the sources --------------------------------------------------------------------------------

class _Source(PydanticBaseSettingsSource):
    """A layer of values read whole: ``__call__`` gives them all, keyed by table."""

    data: dict[str, Any]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


class FileSource(_Source):
    """The TOML file, if any; a deprecated key is renamed (and noted) before the merge."""

    def __init__(self, settings_cls: type[BaseSettings], file: Path | None) -> None:
        super().__init__(settings_cls)
        data = _read_toml(file) if file else {}
        for key in NOT_KEYS:
            if key in data:
                raise ConfigError(key, "is not a known setting",
                                  f"known tables: {', '.join(sorted(TABLES))}")
        self.data, self.renamed, self.deprecated = _upgrade(data, lambda key: str(file))


class EnvironmentSource(_Source):
    """``POSTDESK_<SECTION>__<KEY>`` variables of ``environ``, each value read as TOML when it
    parses as TOML (``true``, ``10``, ``["a", "b"]``), else as text; a text key keeps the text."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        data: dict[str, dict[str, Any]] = {}
        names: dict[str, str] = {}
        for name, raw in environ.items():
            if not name.startswith(ENV_PREFIX) or "__" not in name or name == "POSTDESK_CONFIG":
                continue
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
            if section not in TABLES:
                raise ConfigError(name, f"names an unknown section [{section}]",
                                  f"use one of {', '.join(sorted(TABLES))}")
            if section in LISTS:
                raise ConfigError(name, f"[[{section}]] tables cannot be set from the environment",
                                  "write them in the configuration file")
            data.setdefault(section, {})[key] = _env_value(raw, TABLES[section], key)
            names[f"{section}.{key}"] = name
        self.data, self.renamed, self.deprecated = _upgrade(data, lambda key: names[key])


def _env_value(raw: str, table: type, key: str) -> Any:
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    field = table.__pydantic_fields__.get(key)
    if not isinstance(value, str) and field is not None and _is_text(field.annotation):
        return raw
    return value


def _is_text(kind: Any) -> bool:
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is Literal:
        return True
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return str in typing.get_args(kind)
    return kind is str


def _upgrade(data: dict[str, Any], shown) -> tuple[dict[str, Any], dict, list[str]]:
    """``data`` with every deprecated key renamed (its value in seconds), where each renamed
    value came from (for error messages), and one note per deprecated key."""
    renamed: dict[tuple, tuple[str, float]] = {}
    notes: list[str] = []

    def table(values: Any, kind: type, loc: tuple, where: str) -> Any:
        if not isinstance(values, dict) or not set(values) & set(kind.renamed):
            return values
        values = dict(values)
        for old, (new, unit) in kind.renamed.items():
            if old not in values:
                continue
            if new in values:
                raise ConfigError(f"{where}.{old}", f"is the old name of {new}, which is also set",
                                  f"keep only {new}")
            value = values.pop(old)
            values[new] = _scaled(value, unit)
            renamed[(*loc, new)] = (f"{where}.{old}", unit)
            notes.append(f"{shown(f'{where}.{old}')}: {where}.{old} is deprecated: write "
                         f"{where}.{new} = {_suggest(value, unit)} instead (a duration: seconds, "
                         f"or \"90s\", \"15m\", \"2h\", \"1d\")")
        return values

    upgraded = dict(data)
    for section, kind in TABLES.items():
        if section in LISTS and isinstance(data.get(section), list):
            upgraded[section] = [table(item, LISTS[section], (section, i), f"{section}[{i}]")
                                 for i, item in enumerate(data[section])]
        elif section in data and section not in LISTS:
            upgraded[section] = table(data[section], kind, (section,), section)
    return upgraded, renamed, notes


def _suggest(value: Any, unit: float) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_suggest(v, unit) for v in value) + "]"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f'"{_number(value)}d"' if unit == _DAY else _number(value)
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"file {file} does not exist",
                          "give the path of an existing postdesk.toml") from None
    except IsADirectoryError:
        raise ConfigError(str(file), "is a folder, not a file",
                          f"give the file itself, e.g. {file / 'postdesk.toml'}") from None
    except OSError as exc:
        raise ConfigError(str(file), f"cannot be read: {exc.strerror or exc}",
                          "check the path and the file's permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), f"is not UTF-8 (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start})", "save the file as UTF-8, as TOML requires") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), f"is not valid TOML: {exc}", "fix the syntax") from None


# --- pydantic's errors, in the configuration's words --------------------------------------------

_NUMBER_ERRORS = ("int_type", "int_parsing", "float_type", "float_parsing", "finite_number",
                  "int_parsing_size", "int_from_float")


def _explain(error: Mapping[str, Any], renamed: Mapping[tuple, tuple[str, float]]) -> ConfigError:
    """One pydantic error as a ConfigError that names the key as written and the fix."""
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    context = error.get("ctx") or {}
    key, unit = _key(loc), 1.0
    for size in range(len(loc), 0, -1):
        if loc[:size] in renamed:
            old, unit = renamed[loc[:size]]
            key = old + _key(loc[size:], nested=True)
            break
    if kind == "out_of_range":
        problem = context["problem"] if unit == 1 else _range_of(loc).problem(context["value"], unit)
        return ConfigError(key, problem, context["fix"])
    if kind == "postdesk":
        return ConfigError(key, context["problem"], context["fix"])
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _keys_of(loc[:-1])
        return ConfigError(key, "is not a known setting", f"known keys here: {', '.join(known)}")
    if kind in ("missing", "missing_argument"):
        return ConfigError(key, "is missing", "add it")
    if kind in ("bool_type", "bool_parsing"):
        return ConfigError(key, f"must be true or false, got {value!r}", "write true or false")
    if kind == "int_from_float":
        return ConfigError(key, f"must be a whole number, got {value!r}", "write a whole number")
    if kind in _NUMBER_ERRORS:
        return ConfigError(key, f"must be a number, got {value!r}", "write a number")
    if kind == "string_type":
        return ConfigError(key, f"must be a string, got {value!r}", "write it in quotes")
    if kind == "literal_error":
        allowed = ", ".join(a.strip("'") for a in re.split(r", | or ", context.get("expected", "")))
        return ConfigError(key, f"{value!r} is not allowed", f"use one of: {allowed}")
    if kind in ("tuple_type", "list_type") and len(loc) == 1 and loc[0] in LISTS:
        return ConfigError(key, f"must be a list of tables, got {value!r}",
                           f"write each as a [[{loc[0]}]] table")
    if kind in ("tuple_type", "list_type"):
        return ConfigError(key, f"must be a list, got {value!r}", 'write it as ["a", "b"]')
    if kind in ("dataclass_type", "dataclass_args_type", "model_type", "dict_type"):
        return ConfigError(key or "configuration", "must be a table",
                           f"write it as [{key}]" if key else "write it as [section]")
    return ConfigError(key or "configuration", error.get("msg", "is not valid"),
                       "see docs/configuration.md")


def _key(loc: tuple, nested: bool = False) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text or nested else part)
    return text


def _kind_at(loc: tuple) -> Any:
    """The type of the value at ``loc`` in the schema (a table's class, or a field's type)."""
    kind: Any = Settings
    for part in loc:
        while typing.get_origin(kind) is Annotated:
            kind = typing.get_args(kind)[0]
        if isinstance(part, int):
            kind = typing.get_args(kind)[0]
        elif kind is Settings:
            kind = TABLES[part]
        else:
            kind = field_type(kind.__pydantic_fields__[part])
    return kind


def field_type(info: Any) -> Any:
    """A field's type with its constraints (pydantic keeps them apart): ``Annotated[...]``."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _keys_of(loc: tuple) -> list[str]:
    kind = _kind_at(loc)
    if kind is Settings:
        return sorted(TABLES)
    return sorted(kind.__pydantic_fields__)


def _range_of(loc: tuple) -> Between:
    found = bounds(_kind_at(loc))
    assert found is not None, loc
    return found


def bounds(kind: Any) -> Between | None:
    """The range of a number (of each item for a list), or None."""
    if typing.get_origin(kind) is tuple:
        return bounds(typing.get_args(kind)[0])
    if typing.get_origin(kind) is Annotated:
        found = next((m for m in kind.__metadata__ if isinstance(m, Between)), None)
        return found or bounds(typing.get_args(kind)[0])
    return None


def fields(table: type) -> dict[str, Any]:
    """The keys of a table and their pydantic field info, in the schema's order."""
    return dict(table.__pydantic_fields__)
