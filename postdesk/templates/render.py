"""Renders a notification: the three parts of one key, in the reader's language, from the admin's
current version of each part or the packaged default.

An admin version that fails at render time never blocks a ticket: the whole mail is rendered
from the packaged defaults and ``Rendered.fallback_error`` says what went wrong. Admin versions
reach us through an ``OverrideSource`` (the store, wired by ``cli``); sources are compiled once
and cached by their text, since this runs for every notification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from postdesk.errors import TemplateError
from postdesk.templates.budget import Budget, spending
from postdesk.localtime import local, zone
from postdesk.templates.environment import compile_template, explain
from postdesk.templates.keys import LOCALES, PARTS, example_values, template_key
from postdesk.templates.validate import InvalidTemplate, Problem, static_problems, validate

log = logging.getLogger(__name__)

SUFFIXES = {"subject": "subject", "text": "txt", "html": "html"}
_PLAIN = frozenset({str, int, float, bool, type(None)})  # values ``in_zone`` returns as they are


class OverrideSource(Protocol):
    """Where admin versions live: the current source of one part, or None for the default."""

    def get(self, key: str, locale: str, part: str) -> str | None: ...


@dataclass(frozen=True)
class Rendered:
    """A rendered notification; ``fallback_error`` is set when the admin version was skipped."""

    subject: str
    text: str
    html: str
    locale: str
    fallback_error: str | None = None


@lru_cache(maxsize=None)
def packaged_source(key: str, locale: str, part: str) -> str:
    """The shipped default of one part (``defaults/<locale>/<key>.<suffix>``)."""
    template_key(key)
    if locale not in LOCALES or part not in PARTS:
        raise TemplateError(f"no packaged template for {key}/{locale}/{part}")
    path = resources.files(__package__) / "defaults" / locale / f"{key}.{SUFFIXES[part]}"
    return path.read_text(encoding="utf-8")


class Renderer:
    """Renders notifications; ``default_locale`` is used for readers whose language we lack.
    With ``timezone`` (the desk's IANA zone) every time among the values is shown in that zone,
    and ``|datetime`` labels it (``9 mars 2025 à 10:12 CET``)."""

    def __init__(self, overrides: OverrideSource | None = None,
                 default_locale: str = LOCALES[0], timezone: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if default_locale not in LOCALES:
            raise TemplateError(f"default locale {default_locale!r} is not shipped "
                                f"(locales: {', '.join(LOCALES)})")
        self._overrides = overrides
        self.default_locale = default_locale
        self.clock = clock  # the deadline of the rendering budget runs on it
        self.timezone = timezone and zone(timezone).key

    def resolve_locale(self, locale: str | None) -> str:
        """``fr-CA`` → ``fr``; a language we do not ship → the desk's default."""
        language = (locale or "").replace("_", "-").split("-")[0].strip().lower()
        return language if language in LOCALES else self.default_locale

    def render(self, key: str, locale: str | None, variables: Mapping[str, Any]) -> Rendered:
        """The notification ``key`` for a reader of ``locale``, from plain ``variables``."""
        template_key(key)
        chosen = self.resolve_locale(locale)
        return self._render(key, chosen, variables, lambda part: self._override(key, chosen, part))

    def preview(self, key: str, locale: str | None, variables: Mapping[str, Any] | None = None,
                sources: Mapping[str, str] | None = None) -> Rendered:
        """Render with unsaved ``sources`` (per part) over the current versions; example values
        by default. Sources with problems raise ``InvalidTemplate``."""
        drafts = dict(sources or {})
        problems = [problem for part, source in drafts.items()
                    for problem in validate(key, part, source)]
        if problems:
            raise InvalidTemplate(problems)
        chosen = self.resolve_locale(locale)
        values = example_values(key) if variables is None else variables
        return self._render(key, chosen, values,
                            lambda part: drafts.get(part) or self._override(key, chosen, part))

    def _override(self, key: str, locale: str, part: str) -> str | None:
        return self._overrides.get(key, locale, part) if self._overrides else None

    def _render(self, key: str, locale: str, variables: Mapping[str, Any],
                pick: Callable[[str], str | None]) -> Rendered:
        admin = {part: source for part in PARTS if (source := pick(part))}
        if self.timezone:
            variables = in_zone(variables, self.timezone)
        try:
            return _render_parts(key, locale, admin, variables, self.clock)
        except InvalidTemplate as exc:
            error = f"admin version of {key} ({locale}) not used: {exc}"
            log.warning("template fallback: %s", error)
            return replace(_render_parts(key, locale, {}, variables), fallback_error=error)


def in_zone(value: Any, timezone: str) -> Any:
    """``value`` with every time in it (in dicts and lists too) moved to ``timezone``. Most
    values are text, numbers or None: they are returned first, before the ``isinstance`` checks
    (``Mapping``'s is an abstract class's, the slowest)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return local(value, timezone)
    if isinstance(value, Mapping):
        return {key: in_zone(item, timezone) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [in_zone(item, timezone) for item in value]
    return value


def _render_parts(key: str, locale: str, admin: dict[str, str], variables: Mapping[str, Any],
                  clock: Callable[[], float] = time.monotonic) -> Rendered:
    """Admin sources where given, packaged defaults elsewhere; a failing admin part raises
    ``InvalidTemplate``, a failing default raises ``TemplateError`` (our bug, or missing values)."""
    # One budget's limits for the three parts: they share the deadline.
    limits = Budget.for_values(variables, clock=clock) if admin else None
    subject, text, html = (_render_part(key, locale, part, admin.get(part), variables, limits)
                           for part in PARTS)
    return Rendered(" ".join(subject.split()), text, html, locale)


def _render_part(key: str, locale: str, part: str, source: str | None,
                 variables: Mapping[str, Any], limits: Budget | None = None) -> str:
    problems = static_problems(key, part, source) if source is not None else ()
    if problems:
        raise InvalidTemplate(problems)
    try:
        template = compile_template(source or packaged_source(key, locale, part), locale, part)
        if source is None:
            return template.render(variables)  # ours: known to be linear in its values
        limits = limits or Budget.for_values(variables)
        with spending(Budget(chars=limits.chars, clock=limits.clock, deadline=limits.deadline)):
            return template.render(variables)
    except Exception as exc:  # whatever a template does wrong becomes one sentence
        line, reason = explain(exc)
        if source is None:
            raise TemplateError(f"packaged template {key}/{locale} {part}, line {line}: "
                                f"{reason}") from exc
        raise InvalidTemplate([Problem(part, line, reason)]) from exc
