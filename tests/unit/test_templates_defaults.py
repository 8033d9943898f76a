"""QA over every packaged template: each key × locale × part renders with its example values and
with every variant the declared types allow (null, empty list, flipped boolean); subjects are one
line with the ticket tag; no Jinja syntax or "None" leaks; HTML is balanced and in the right
language; every packaged source passes the same validation as an admin's."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, Callable, Iterator

import pytest

from postdesk.templates import KEYS, LOCALES, PARTS, Renderer, example_values, validate
from postdesk.templates.keys import Field
from postdesk.templates.render import packaged_source

RENDERER = Renderer()
ALL = [(key, locale) for key in KEYS for locale in LOCALES]


class _Balance(HTMLParser):
    VOID = {"br", "meta", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def check_mail(key: str, locale: str, values: dict[str, Any]) -> None:
    mail = RENDERER.render(key, locale, values)
    assert mail.fallback_error is None and mail.locale == locale
    assert mail.subject and "\n" not in mail.subject
    if "ticket" in values:
        assert values["ticket"]["tag"] in mail.subject
    for part in (mail.subject, mail.text, mail.html):
        assert not any(mark in part for mark in ("{{", "}}", "{%", "%}", "None"))
    assert "\n\n\n" not in mail.text
    assert mail.html.startswith("<!DOCTYPE html>") and f'<html lang="{locale}">' in mail.html
    parser = _Balance()
    parser.feed(mail.html)
    assert parser.errors == [] and parser.open == []


@pytest.mark.parametrize(("key", "locale"), ALL)
def test_every_template_renders_with_its_examples(key: str, locale: str) -> None:
    check_mail(key, locale, example_values(key))


@pytest.mark.parametrize(("key", "locale"), ALL)
@pytest.mark.parametrize("part", PARTS)
def test_every_packaged_source_passes_validation(key: str, locale: str, part: str) -> None:
    assert validate(key, part, packaged_source(key, locale, part)) == []


def _paths(fields: tuple[Field, ...], prefix: tuple[str, ...]) -> Iterator[tuple[tuple, str]]:
    for field in fields:
        yield prefix + (field.name,), field.type
        yield from _paths(field.fields, prefix + (field.name,))


def _change(type_: str) -> Callable[[Any], Any] | None:
    if type_.endswith("or null"):
        return lambda old: None
    if type_ == "boolean":
        return lambda old: not old
    if type_.startswith("list of"):
        return lambda old: []
    return None


def _replace(value: Any, path: tuple[str, ...], change: Callable[[Any], Any]) -> Any:
    if not path:
        return change(value)
    if isinstance(value, list):
        return [_replace(item, path, change) for item in value]
    if value is None:
        return None
    return {**value, path[0]: _replace(value[path[0]], path[1:], change)}


def _variants() -> Iterator[tuple[str, str]]:
    for key in KEYS.values():
        for variable in key.variables:
            for path, type_ in [((variable.name,), variable.type),
                                *_paths(variable.fields, (variable.name,))]:
                if _change(type_):
                    yield key.name, ".".join(path)


@pytest.mark.parametrize(("key", "path"), sorted(set(_variants())))
@pytest.mark.parametrize("locale", LOCALES)
def test_every_template_renders_when_a_value_changes(key: str, path: str, locale: str) -> None:
    values = example_values(key)
    variable = next(v for v in KEYS[key].variables if v.name == path.split(".")[0])
    types = dict([((variable.name,), variable.type), *_paths(variable.fields, (variable.name,))])
    steps = tuple(path.split("."))
    values[steps[0]] = _replace(values[steps[0]], steps[1:], _change(types[steps]))
    check_mail(key, locale, values)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", ["submitted", "evaluating", "engineering", "verifying",
                                  "resolved"])
def test_escalation_update_renders_at_every_step(locale: str, step: str) -> None:
    values = example_values("escalation_update")
    values["escalation"] = {**values["escalation"], "status": step,
                            "confirm_requested": step == "verifying"}
    check_mail("escalation_update", locale, values)


@pytest.mark.parametrize("locale", LOCALES)
def test_survey_request_explains_the_good_bad_scale(locale: str) -> None:
    values = {**example_values("survey_request"),
              "survey": {"scale": "good-bad", "satisfied_from": 6}}
    check_mail("survey_request", locale, values)
    words = {"fr": "Mauvaise, je suis mécontent(e)", "en": "Bad, I am dissatisfied"}[locale]
    assert words in RENDERER.render("survey_request", locale, values).text


def test_survey_request_explains_the_score_scale() -> None:
    text = RENDERER.render("survey_request", "fr", example_values("survey_request")).text
    assert "de 1 (pas du tout satisfait(e)) à 7" in text and "Une note de 6 ou plus" in text


def test_ticket_created_gives_number_and_what_a_good_request_contains() -> None:
    text = RENDERER.render("ticket_created", "fr", example_values("ticket_created")).text
    for words in ("#1042", "Un problème par ticket", "ce que vous essayiez de faire",
                  "ce qui aurait dû se passer", "captures", "modifications récentes",
                  "répondez simplement à cet e-mail"):
        assert words in text


def test_pending_reminder_gives_number_and_resolution_date() -> None:
    values = example_values("pending_reminder")
    text = RENDERER.render("pending_reminder", "fr", values).text
    assert "relance 1 sur 2" in text and "« résolu » le 14 mars 2025" in text
    values["reminder"] = {**values["reminder"], "number": 2}
    assert "dernière relance" in RENDERER.render("pending_reminder", "fr", values).text


def test_greeting_without_a_name() -> None:
    values = {**example_values("ticket_created"), "customer": {"name": "", "address": "j@x.fr"}}
    mail = RENDERER.render("ticket_created", "fr", values)
    assert mail.text.startswith("Bonjour,\n") and ">Bonjour,</p>" in mail.html


def test_ticket_with_no_subject() -> None:
    ticket = {**example_values("agent_new_ticket")["ticket"], "subject": ""}
    values = {**example_values("agent_new_ticket"), "ticket": ticket}
    assert RENDERER.render("agent_new_ticket", "en", values).subject == \
        "[#1042] New ticket: (no subject)"


@pytest.mark.parametrize("locale", LOCALES)
def test_command_error_on_a_closed_ticket_explains_instead_of_asking_to_fix(locale: str) -> None:
    values = example_values("command_error")
    values["ticket"] = {**values["ticket"], "status": "closed"}
    values["errors"] = [{"line": 1, "command": "Bonjour Julie,", "problem": "not_allowed",
                         "allowed": []}]
    check_mail("command_error", locale, values)
    text = RENDERER.render("command_error", locale, values).text
    assert {"fr": "Ligne 1 : Bonjour Julie,", "en": "Line 1: Bonjour Julie,"}[locale] in text
    assert {"fr": "définitivement", "en": "is final"}[locale] in text
    assert {"fr": "corrigez", "en": "fix the command"}[locale] not in text
