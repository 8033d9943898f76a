"""One frozen settings object, built once from a TOML file and the environment, validated at start.

Where the file comes from: ``--config PATH``, else ``$POSTDESK_CONFIG``, else ``./postdesk.toml``,
else the built-in defaults. Every scalar key ``[section] key`` can be overridden by the
environment variable ``POSTDESK_<SECTION>__<KEY>`` (its value read as TOML when it parses as
TOML, else as a plain string). A wrong value stops start-up with a :class:`ConfigError` that
names the key and says how to fix it. The object is passed to constructors, never imported as a
global. Every key is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Mapping

from postdesk.errors import ConfigError

ENV_PREFIX = "POSTDESK_"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


class Bytes(int):
    """An integer size in bytes that may be written ``"25MB"``, ``"500KB"`` or ``"10MiB"``."""


class Duration(float):
    """Seconds, written as a number of seconds or with a unit: ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class DeskSettings:
    name: str = "Support"
    address: str = "support@localhost"
    domains: tuple[str, ...] = ()
    locale: str = "fr"
    tag: str = "[#{id}]"
    history_address: str = ""
    timezone: str = "UTC"  # IANA name; every time shown to a person is in it, labelled


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///postdesk.db"
    echo: bool = False


@dataclass(frozen=True)
class SmtpSettings:
    listen: str = "127.0.0.1:2525"
    max_message_bytes: Bytes = Bytes(25 * 1024 * 1024)
    max_bytes_in_flight: Bytes = Bytes(64 * 1024 * 1024)
    lmtp: bool = False
    hostname: str = ""
    store_timeout_seconds: float = 10.0
    max_connections: int = 100


@dataclass(frozen=True)
class OutboundSettings:
    transport: str = "maildir"
    folder: str = "./outbound"
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    tls: bool = False
    username: str = ""
    password_env: str = ""
    timeout_seconds: float = 30.0
    max_attempts: int = 8
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    poll_seconds: float = 2.0


@dataclass(frozen=True)
class LimitsSettings:
    auto_replies_per_address_per_hour: int = 10
    auto_replies_per_address_per_day: int = 40
    auto_replies_per_ticket: int = 10
    auto_replies_ticket_window: Duration = Duration(600)
    inbound_per_sender: int = 20
    inbound_window: Duration = Duration(3600)


@dataclass(frozen=True)
class AttachmentSettings:
    max_files: int = 5
    max_bytes: Bytes = Bytes(500 * 1000)
    types: tuple[str, ...] = ("csv", "tsv", "xlsx", "doc", "docx", "pdf", "txt", "jpg", "png",
                              "gif", "mp4", "mov", "har")
    check_content: bool = True


@dataclass(frozen=True)
class StoreSettings:
    blob_dir: str = ""


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 50
    max_attempts: int = 5
    claim_timeout_seconds: float = 60.0  # a claim not renewed this long: its worker stopped
    poll_seconds: float = 1.0
    separate_process: bool = True
    processes: int = 1  # worker processes ``serve`` runs (PostgreSQL; with separate_process)
    commit_interval_seconds: float = 0.05
    nice: int = 10  # how much lower the processing process's CPU priority is than the edge's


@dataclass(frozen=True)
class LifecycleSettings:
    on_agent_reply: str = "pending"
    reminder_days: tuple[float, ...] = (2.0, 5.0)
    resolve_after_days: float = 10.0
    reopen_days: float = 7.0


@dataclass(frozen=True)
class SurveySettings:
    enabled: bool = True
    delay: Duration = Duration(86400)  # one day: time to reopen before being asked to rate
    after_no_response: bool = True
    scale: str = "1-7"
    satisfied_from: int = 6
    answer_days: float = 28.0
    review_address: str = ""


@dataclass(frozen=True)
class SchedulerSettings:
    enabled: bool = True
    interval_seconds: float = 60.0
    batch_size: int = 500


@dataclass(frozen=True)
class RoutingSettings:
    default_queue: str = "default"
    urgent_words: tuple[str, ...] = ("urgent", "urgence", "bloquant", "production down",
                                     "en panne", "critical", "critique")
    high_words: tuple[str, ...] = ("asap", "important", "rapidement", "au plus vite")


@dataclass(frozen=True)
class BounceSettings:
    threshold: float = 3.0  # permanent failures (at most one a day) before an address is undeliverable
    stale_after_days: float = 7.0  # a score with no failure for this long starts again from 0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    redact_addresses: bool = True
    format: str = "text"


@dataclass(frozen=True)
class MetricsSettings:
    listen: str = ""  # HOST:PORT of /healthz, /readyz, /metrics; empty: off


@dataclass(frozen=True)
class AgentAuthSettings:
    required: bool = True
    trusted_authserv_id: str = ""


@dataclass(frozen=True)
class AgentSettings:
    address: str
    name: str = ""
    queues: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueSettings:
    name: str
    addresses: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrganisationSettings:
    name: str
    domains: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImapSettings:
    name: str
    host: str
    username: str
    password_env: str
    port: int = 0
    security: str = "tls"
    inbox: str = "INBOX"
    sent: str | None = None
    processed: str | None = None
    idle: bool = True
    poll_seconds: float = 60.0


@dataclass(frozen=True)
class Settings:
    desk: DeskSettings = field(default_factory=DeskSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    survey: SurveySettings = field(default_factory=SurveySettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    bounces: BounceSettings = field(default_factory=BounceSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    agent_auth: AgentAuthSettings = field(default_factory=AgentAuthSettings)
    agents: tuple[AgentSettings, ...] = ()
    queues: tuple[QueueSettings, ...] = ()
    imap: tuple[ImapSettings, ...] = ()
    organisations: tuple[OrganisationSettings, ...] = ()
    source: str = "built-in defaults"

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.smtp.listen.rpartition(":")
        return host.strip("[]"), int(port)


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
    """Read, override from the environment, convert and validate the whole configuration."""
    environ = os.environ if environ is None else environ
    file = locate(path, environ)
    data = _read_toml(file) if file else {}
    data = _apply_environment(data, environ)
    settings = _build(Settings, data, "")
    settings = dataclasses.replace(settings, source=str(file) if file else "built-in defaults")
    return validate(settings)


def validate(settings: Settings) -> Settings:
    """Check the values that types alone cannot; fill the defaults derived from other keys."""
    desk = settings.desk
    if desk.address.count("@") != 1:
        raise ConfigError("desk.address", f"{desk.address!r} is not a mail address",
                          'write it as "support@example.com"')
    if "{id}" not in desk.tag:
        raise ConfigError("desk.tag", f"{desk.tag!r} has no {{id}} placeholder",
                          'write it like "[#{id}]" or "[ACME #{id}]"')
    if desk.locale not in ("fr", "en"):
        raise ConfigError("desk.locale", f"{desk.locale!r} is not a shipped locale", 'use "fr" or "en"')
    _check_timezone(desk.timezone)
    domains = tuple(d.lower() for d in desk.domains) or (desk.address.rpartition("@")[2].lower(),)
    settings = dataclasses.replace(settings, desk=dataclasses.replace(desk, domains=domains))
    _check_listen(settings.smtp.listen)
    if settings.metrics.listen:
        _check_listen(settings.metrics.listen, "metrics.listen")
    _check_choice("outbound.transport", settings.outbound.transport, ("maildir", "smtp"))
    _check_choice("lifecycle.on_agent_reply", settings.lifecycle.on_agent_reply, ("pending", "open"))
    _check_choice("logging.level", settings.logging.level.upper(), ("DEBUG", "INFO", "WARNING", "ERROR"))
    _check_choice("logging.format", settings.logging.format, ("text", "json"))
    if not settings.database.url.startswith(("sqlite", "postgresql")):
        raise ConfigError("database.url", f"{settings.database.url!r} is not supported",
                          'use "sqlite:///PATH" or "postgresql+psycopg://USER@HOST/DB"')
    if settings.database.url.startswith("postgresql") and find_spec("psycopg") is None:
        raise ConfigError("database.url", "PostgreSQL needs psycopg, which is not installed",
                          "pip install 'postdesk[postgres]'")
    _check_choice("survey.scale", settings.survey.scale, ("1-7", "good-bad"))
    if settings.smtp.max_connections < 0:
        raise ConfigError("smtp.max_connections", f"{settings.smtp.max_connections} is negative",
                          "write how many SMTP connections may be open at once, or 0 for no limit")
    if not 0 <= settings.worker.nice <= 19:
        raise ConfigError("worker.nice", f"{settings.worker.nice} is outside 0..19",
                          "write 0 (same priority as the SMTP edge) up to 19 (lowest)")
    _check_workers(settings)
    _check_agents(settings)
    for i, box in enumerate(settings.imap):
        _check_choice(f"imap[{i}].security", box.security, ("tls", "starttls", "none"))
    _check_ranges(settings)
    return settings


def startup_warnings(settings: Settings) -> list[str]:
    """What is allowed but almost surely not meant: ``serve`` logs these at start and
    ``postdesk agents list`` prints them."""
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


# The range of every number in the configuration, bounds included; a list's items are checked
# one by one, and an [[imap]] key in every mailbox. NaN and infinity are in no range.
_DAY, _MANY = 86400, 10**9
_RANGES: dict[str, tuple[float, float]] = {
    "smtp.max_message_bytes": (1000, 2**31 - 1), "smtp.max_bytes_in_flight": (0, 2**40),
    "smtp.store_timeout_seconds": (0.1, 3600), "smtp.max_connections": (0, 100_000),
    "outbound.port": (1, 65535), "outbound.timeout_seconds": (0.1, 3600),
    "outbound.max_attempts": (1, 1000), "outbound.retry_base_seconds": (0, 7 * _DAY),
    "outbound.retry_max_seconds": (0, 7 * _DAY), "outbound.poll_seconds": (0.01, 3600),
    "limits.auto_replies_per_address_per_hour": (0, _MANY),
    "limits.auto_replies_per_address_per_day": (0, _MANY),
    "limits.auto_replies_per_ticket": (0, _MANY),
    "limits.auto_replies_ticket_window": (0, 365 * _DAY),
    "limits.inbound_per_sender": (1, _MANY), "limits.inbound_window": (0, 365 * _DAY),
    "attachments.max_files": (0, 10_000), "attachments.max_bytes": (0, 2**40),
    "worker.batch_size": (1, 100_000), "worker.max_attempts": (1, 1000),
    "worker.claim_timeout_seconds": (1, _DAY), "worker.poll_seconds": (0.01, 3600),
    "worker.processes": (1, 256), "worker.commit_interval_seconds": (0, 3600),
    "worker.nice": (0, 19),
    "lifecycle.reminder_days": (0, 3650), "lifecycle.resolve_after_days": (0, 3650),
    "lifecycle.reopen_days": (0, 3650),
    "survey.delay": (0, 365 * _DAY), "survey.satisfied_from": (1, 7),
    "survey.answer_days": (0, 3650),
    "scheduler.interval_seconds": (0.01, _DAY), "scheduler.batch_size": (1, 100_000),
    "imap.port": (0, 65535), "imap.poll_seconds": (0.01, _DAY),
    "bounces.threshold": (1, 1000), "bounces.stale_after_days": (0.01, 3650),
}


def _check_ranges(settings: Settings) -> None:
    for key, (low, high) in _RANGES.items():
        section, _, name = key.partition(".")
        tables = getattr(settings, section)
        places = ([(f"{section}[{i}]", t) for i, t in enumerate(tables)]
                  if isinstance(tables, tuple) else [(section, tables)])
        for where, table in places:
            value = getattr(table, name)
            items = list(enumerate(value)) if isinstance(value, tuple) else [(None, value)]
            for i, item in items:
                if not low <= item <= high:
                    raise ConfigError(f"{where}.{name}" + ("" if i is None else f"[{i}]"),
                                      f"{_number(item)} is not between {_number(low)} and "
                                      f"{_number(high)}", "write a value in that range")


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, int) else f"{value:g}"


def _check_workers(settings: Settings) -> None:
    timeout = settings.worker.claim_timeout_seconds
    if timeout < 1:
        raise ConfigError("worker.claim_timeout_seconds", f"{timeout:g} is below 1 second",
                          "write how long a claim may go unrenewed before its worker is taken "
                          "for dead (60 by default; a live worker renews it four times as often)")
    processes = settings.worker.processes
    if processes < 1:
        raise ConfigError("worker.processes", f"{processes} is below 1",
                          "write how many worker processes serve runs (1 or more)")
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


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("desk.timezone", f"{name!r} is not an IANA time zone name",
                          'write e.g. "Europe/Paris" or "UTC"') from None


def _check_listen(listen: str, key: str = "smtp.listen") -> None:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(key, f"{listen!r} is not HOST:PORT", 'write e.g. "127.0.0.1:2525"')


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"{value!r} is not allowed", f"use one of: {', '.join(allowed)}")


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


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == "POSTDESK_CONFIG":
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in _SECTION_TYPES:
            raise ConfigError(name, f"names an unknown section [{section}]",
                              f"use one of {', '.join(sorted(_SECTION_TYPES))}")
        data.setdefault(section, {})[key] = _env_value(raw)
    return data


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(where or "configuration", "must be a table", "write it as [section]")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(key, "is not a known setting",
                          f"known keys here: {', '.join(sorted(names))}")
    values = {}
    for name in names & set(data):
        key = f"{where}.{name}" if where else name
        values[name] = _convert(hints[name], data[name], key)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = str(exc).rsplit(":", 1)[-1].strip()
        raise ConfigError(where, f"misses required key(s) {missing}", "add them") from None


def _convert(kind: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else _convert(options[0], value, key)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [value]
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, got {value!r}", 'write it as ["a", "b"]')
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    return _scalar(kind, value, key)


def _scalar(kind: Any, value: Any, key: str) -> Any:
    if kind is Bytes:
        return _size(value, key)
    if kind is Duration:
        return _duration(value, key)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(key, f"must be true or false, got {value!r}", "write true or false")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(key, f"must be a number, got {value!r}", "write a number")
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(key, f"must be a number, got {value!r}", "write a number") from None
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(key, f"must be a string, got {value!r}", 'write it in quotes')
        return str(value)
    return value


def _size(value: Any, key: str) -> Bytes:
    if isinstance(value, int) and not isinstance(value, bool):
        return Bytes(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(key, f"must be a size, got {value!r}", 'write bytes or e.g. "25MB", "500KB"')
    return Bytes(int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]))


def _duration(value: Any, key: str) -> Duration:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return Duration(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(key, f"must be a duration, got {value!r}",
                          'write seconds or e.g. "30m", "2h", "1d"')
    return Duration(float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


_SECTION_TYPES = {f.name: f for f in dataclasses.fields(Settings) if f.name != "source"}
