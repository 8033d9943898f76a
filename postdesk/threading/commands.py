"""Commands at the top of an agent's mail (``#status pending``, ``#assign me``, ``#note`` …).

Commands are the lines starting with ``#`` before the first line of text; blank lines between
them are allowed. :func:`parse_commands` returns the commands, the problems (a wrong command
applies nothing at all) and the text without the command lines — what the customer may see.
Values are checked against the configuration (agents, queues) so that an error names what is
allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from email.errors import HeaderParseError
from email.headerregistry import Address

from postdesk.config import Settings
from postdesk.lifecycle import Status
from postdesk.mail.addresses import normalise_address

STATUSES = tuple(s.value for s in Status if s is not Status.NEW)  # nothing goes back to new
PRIORITIES = ("low", "normal", "high", "urgent")
STEPS = ("evaluating", "engineering", "verifying", "resolved")
_LINE = re.compile(r"^#([a-z_]+)\b[ \t]*(.*)$", re.I)
_TICKET = re.compile(r"^#?(\d{1,9})$")


@dataclass(frozen=True)
class Command:
    name: str
    value: str = ""
    extra: str = ""
    line: str = ""
    number: int = 0  # the line number in the agent's text, from 1


@dataclass(frozen=True)
class Problem:
    line: int  # the line number in the agent's text, from 1
    command: str  # the whole line, as the agent wrote it
    problem: str  # unknown_command | missing_value | invalid_value | not_found | invalid_date
    allowed: tuple[str, ...] = ()


@dataclass
class Parsed:
    commands: list[Command] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    text: str = ""
    text_line: int = 1  # the line number where ``text`` starts


def parse_commands(text: str, settings: Settings) -> Parsed:
    """An agent's commands: every ``#`` line before the first line of text."""
    lines = text.replace("\r\n", "\n").split("\n")
    parsed, index = Parsed(), 0
    while index < len(lines):
        line = lines[index].strip()
        if line and not line.startswith("#") or re.match(r"^#\s*\d", line):
            break  # text begins ("#12 is broken" is text, not a command)
        if line:
            _one(index + 1, line, settings, parsed)
        index += 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    parsed.text_line = index + 1
    parsed.text = "\n".join(lines[index:]).strip("\n")
    return parsed


def customer_closes(text: str) -> tuple[bool, str]:
    """A customer closes their own ticket by answering ``#close``; other lines are text."""
    stripped = text.lstrip()
    first, _, rest = stripped.partition("\n")
    if re.fullmatch(r"#close\b.*", first.strip(), re.I):
        return True, rest.strip("\n")
    return False, text


def _one(number: int, line: str, settings: Settings, parsed: Parsed) -> None:
    match = _LINE.match(line)
    name = match.group(1).lower() if match else line.split()[0]
    checker = _AGENT.get(name) if match else None
    if checker is None:
        parsed.problems.append(Problem(number, line, "unknown_command",
                                       tuple(f"#{n}" for n in _AGENT)))
        return
    rest = match.group(2).strip()
    result = checker(rest, settings)
    if isinstance(result, Problem):
        parsed.problems.append(Problem(number, line, result.problem, result.allowed))
    else:
        parsed.commands.append(Command(name, *result, line=line, number=number))


def _choice(options: tuple[str, ...]):
    def check(rest: str, _settings):
        value = rest.split()[0].lower() if rest else ""
        if not value:
            return Problem(0, "", "missing_value", options)
        return (value, "") if value in options else Problem(0, "", "invalid_value", options)
    return check


def _assign(rest: str, settings: Settings):
    names = tuple(["me", *(a.name or a.address for a in settings.agents)])
    if not rest:
        return Problem(0, "", "missing_value", names)
    wanted = rest.strip().lower()
    if wanted == "me":
        return ("me", "")
    for agent in settings.agents:
        if wanted in (agent.address.lower(), agent.name.lower()):
            return (agent.address.lower(), "")
    return Problem(0, "", "not_found", names)


def _queue(rest: str, settings: Settings):
    names = tuple(q.name for q in settings.queues) or ("default",)
    value = rest.strip()
    if not value:
        return Problem(0, "", "missing_value", names)
    found = [n for n in names if n.lower() == value.lower()]
    return (found[0], "") if found else Problem(0, "", "not_found", names)


def _cc(rest: str, _settings):
    parts = rest.split()
    address = one_address(parts[1]) if len(parts) == 2 else None
    if address is None or parts[0].lower() not in ("add", "remove"):
        return Problem(0, "", "invalid_value", ("add ADDRESS", "remove ADDRESS"))
    return (parts[0].lower(), address)


def one_address(text: str) -> str | None:
    """``text`` as one normalised address when it is exactly one RFC 5322 addr-spec
    (``<...>`` allowed), else None: ``a@b.test,c@d.test`` and ``a@b@c`` are not one address.

    The standard library's parser refuses a non-ASCII local part (RFC 6532 allows it), so it
    reads the address with each non-ASCII character standing as one ASCII letter."""
    spec = text.strip().removeprefix("<").removesuffix(">")
    shape = "".join(c if c.isascii() else "u" for c in spec)
    try:
        parsed = Address(addr_spec=shape)
    except (ValueError, IndexError, HeaderParseError):  # MessageDefect is a ValueError
        return None
    return normalise_address(spec) if parsed.addr_spec == shape else None


def _merge(rest: str, _settings):
    match = _TICKET.match(rest.strip())
    return (match.group(1), "") if match else Problem(0, "", "invalid_value", ("#ID",))


def _flag(rest: str, _settings):
    return ("", rest)


def _escalation(rest: str, _settings):
    parts = rest.split()
    if not parts:
        return Problem(0, "", "missing_value", STEPS)
    if parts[0].lower() not in STEPS:
        return Problem(0, "", "invalid_value", STEPS)
    if len(parts) > 1:
        try:
            date.fromisoformat(parts[1])
        except ValueError:
            return Problem(0, "", "invalid_date", ("YYYY-MM-DD",))
        return (parts[0].lower(), parts[1])
    return (parts[0].lower(), "")


_AGENT = {"status": _choice(STATUSES), "assign": _assign, "priority": _choice(PRIORITIES),
          "queue": _queue, "note": _flag, "cc": _cc, "merge": _merge, "escalate": _flag,
          "escalation": _escalation}
