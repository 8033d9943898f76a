"""Renderer: admin versions over packaged defaults, fallback when an admin version fails (the
ticket is never blocked), injection payloads that cannot run, escaping, language choice,
preview and the compile cache."""

from __future__ import annotations

import pytest
from jinja2 import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postdesk.errors import TemplateError
from postdesk.templates import (InvalidTemplate, Renderer, example_values, packaged_source)
from postdesk.templates.environment import compile_template, environment


class FakeOverrides:
    """An OverrideSource held in a dict, recording what was asked."""

    def __init__(self, sources: dict[tuple[str, str, str], str] | None = None) -> None:
        self.sources = sources or {}
        self.asked: list[tuple[str, str, str]] = []

    def get(self, key: str, locale: str, part: str) -> str | None:
        self.asked.append((key, locale, part))
        return self.sources.get((key, locale, part))


def default(key: str = "ticket_created", locale: str = "fr"):
    return Renderer().render(key, locale, example_values(key))


def with_override(part: str, source: str, key: str = "ticket_created", locale: str = "fr",
                  values: dict | None = None):
    renderer = Renderer(FakeOverrides({(key, locale, part): source}))
    return renderer.render(key, locale, example_values(key) if values is None else values)


def test_without_overrides_the_packaged_defaults_are_used() -> None:
    mail = default()
    assert mail.subject.startswith("[#1042] Nous avons bien reçu votre demande")
    assert mail.text.startswith("Bonjour Julie Moreau,") and mail.locale == "fr"
    assert mail.fallback_error is None


def test_an_admin_part_replaces_only_that_part() -> None:
    mail = with_override("subject", "{{ ticket.tag }}   Merci\t{{ customer.name }} ")
    assert mail.subject == "[#1042] Merci Julie Moreau"
    assert mail.text == default().text and mail.html == default().html
    assert mail.fallback_error is None


def test_a_failing_admin_part_falls_back_to_the_whole_default_mail() -> None:
    mail = with_override("text", "Bonjour\n{{ ticket.nope }}")
    assert (mail.subject, mail.text, mail.html) == (default().subject, default().text,
                                                    default().html)
    assert mail.fallback_error == (
        "admin version of ticket_created (fr) not used: text, line 2: uses field 'nope', "
        "which does not exist here (fields: assignee, created_at, id, priority, queue, ref, "
        "requester, status, subject, tag, updated_at)")


def test_a_failing_admin_subject_drops_the_admin_text_too() -> None:
    renderer = Renderer(FakeOverrides({
        ("ticket_created", "fr", "subject"): "{{ ticket.tag }} {{ ticket.oops }}",
        ("ticket_created", "fr", "text"): "Texte de l'admin"}))
    mail = renderer.render("ticket_created", "fr", example_values("ticket_created"))
    assert mail.text == default().text and "subject, line 1" in mail.fallback_error


def test_an_admin_version_failing_only_on_real_values_falls_back() -> None:
    values = example_values("agent_new_ticket")
    values["ticket"] = {**values["ticket"], "queue": None}
    mail = with_override("text", "{{ ticket.queue.upper() }}", "agent_new_ticket",
                         values=values)
    assert mail.fallback_error.startswith("admin version of agent_new_ticket (fr) not used: "
                                          "text, line 1:")
    assert mail.text.startswith("Nouveau ticket #1042")


PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__init__ }}",
    "{{ request }}",
    "{% for x in range(99999999) %}{{ x }}{% endfor %}",
    "{{ ticket['_' ~ '_class__'].__subclasses__() }}",
    "{{ ticket.subject * 999999999 }}",
    "{% include '/etc/passwd' %}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("part", ["subject", "text", "html"])
def test_injection_payloads_cannot_run_at_render_time(payload: str, part: str) -> None:
    mail = with_override(part, "{{ ticket.tag }} " + payload)
    assert mail.fallback_error and mail.fallback_error.startswith(
        f"admin version of ticket_created (fr) not used: {part}, line 1:")
    assert (mail.subject, mail.text, mail.html) == (default().subject, default().text,
                                                    default().html)


def test_the_sandbox_refuses_at_render_time_what_static_checks_cannot_see() -> None:
    mail = with_override("text", "{{ ticket['_' ~ '_class__'] }}")
    assert mail.fallback_error == (
        "admin version of ticket_created (fr) not used: text, line 1: is refused by the "
        "sandbox: access to attribute '__class__' of 'dict' object is unsafe.")


def test_a_broken_packaged_template_is_an_error_not_a_silent_fallback() -> None:
    values = example_values("ticket_created")
    del values["customer"]
    with pytest.raises(TemplateError, match=r"^packaged template ticket_created/fr text, "
                       r"line 1: uses 'customer', which is not defined$"):
        Renderer().render("ticket_created", "fr", values)


def test_customer_text_is_escaped_in_html_and_raw_in_text() -> None:
    values = example_values("agent_new_ticket")
    values["message"] = {**values["message"], "text": "<script>alert('x')</script>\nligne 2"}
    mail = Renderer().render("agent_new_ticket", "fr", values)
    assert "<script>alert('x')</script>" in mail.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;<br>\nligne 2" in mail.html
    assert "<script>" not in mail.html


def test_admin_html_is_escaped_too() -> None:
    values = example_values("ticket_created")
    values["customer"] = {"name": '"><img src=x onerror=alert(1)>', "address": "a@b.fr"}
    mail = with_override("html", '<p title="{{ customer.name }}">{{ customer.name }}</p>',
                         values=values)
    assert "<img" not in mail.html and "&#34;&gt;&lt;img" in mail.html


def test_header_injection_in_a_subject_is_flattened() -> None:
    values = example_values("agent_reply")
    values["ticket"] = {**values["ticket"], "subject": "Aide\r\nBcc: victime@exemple.fr"}
    subject = Renderer().render("agent_reply", "fr", values).subject
    assert subject == "[#1042] Aide Bcc: victime@exemple.fr"


def test_null_values_print_as_nothing() -> None:
    values = example_values("ticket_created")
    assert values["ticket"]["assignee"] is None
    assert with_override("text", "[{{ ticket.assignee }}]", values=values).text == "[]"


@pytest.mark.parametrize(("asked", "used"), [
    ("fr", "fr"), ("en", "en"), ("fr-CA", "fr"), ("en_GB", "en"), ("EN-us", "en"),
    ("de", "fr"), ("", "fr"), (None, "fr"),
])
def test_language_choice(asked: str | None, used: str) -> None:
    mail = Renderer().render("ticket_created", asked, example_values("ticket_created"))
    assert mail.locale == used
    assert mail.text.startswith({"fr": "Bonjour", "en": "Hello"}[used])


def test_unknown_language_falls_back_to_the_desk_default() -> None:
    renderer = Renderer(default_locale="en")
    assert renderer.render("ticket_created", "de-AT", example_values("ticket_created")).locale \
        == "en"
    with pytest.raises(TemplateError, match="default locale 'de' is not shipped"):
        Renderer(default_locale="de")


def test_overrides_are_asked_for_the_resolved_language() -> None:
    overrides = FakeOverrides()
    Renderer(overrides).render("ticket_created", "fr-BE", example_values("ticket_created"))
    assert overrides.asked == [("ticket_created", "fr", part) for part in
                               ("subject", "text", "html")]


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(TemplateError, match="unknown template key 'ticket_lost'"):
        Renderer().render("ticket_lost", "fr", {})


def test_preview_uses_example_values_by_default() -> None:
    assert Renderer().preview("pending_reminder", "en").subject == \
        "[#1042] Reminder 1/2: your request is waiting for your reply"


def test_preview_shows_an_unsaved_draft_over_the_current_versions() -> None:
    renderer = Renderer(FakeOverrides({("ticket_created", "fr", "text"): "Version en place"}))
    mail = renderer.preview("ticket_created", "fr",
                            sources={"subject": "{{ ticket.tag }} Brouillon"})
    assert (mail.subject, mail.text) == ("[#1042] Brouillon", "Version en place")


def test_preview_refuses_a_draft_with_every_problem() -> None:
    with pytest.raises(InvalidTemplate) as refused:
        Renderer().preview("ticket_created", "fr", sources={
            "subject": "Sans tag", "text": "{{ foo }}"})
    assert [str(problem) for problem in refused.value.problems] == [
        "subject: does not contain the ticket tag {{ ticket.tag }}; "
        "replies to this mail would not find their ticket",
        "text, line 1: uses undeclared variable 'foo' (allowed: desk, ticket, customer)"]


def test_preview_with_own_values() -> None:
    values = {**example_values("ticket_created"), "customer": {"name": "Zoé", "address": "z@x"}}
    assert Renderer().preview("ticket_created", "fr", values).text.startswith("Bonjour Zoé,")


def test_sources_are_compiled_once() -> None:
    source = packaged_source("ticket_created", "fr", "text")
    assert compile_template(source, "fr", "text") is compile_template(source, "fr", "text")
    assert compile_template(source, "fr", "text") is not compile_template(source, "en", "text")


def test_packaged_source_of_an_unknown_part_is_an_error() -> None:
    with pytest.raises(TemplateError, match="no packaged template for ticket_created/de/text"):
        packaged_source("ticket_created", "de", "text")


class Fields(dict):
    """A dict subclass: not taken by the sandbox's shortcut for plain dicts."""


@pytest.mark.parametrize("obj", [
    {"ref": "#1", "items": "an item", "__class__": "x", "format": "y", "_p": 1},
    Fields(ref="#1", items="an item"),
], ids=["dict", "dict subclass"])
@pytest.mark.parametrize("name", ["ref", "items", "keys", "missing", "__class__", "format", "_p"])
def test_fields_of_a_dict_resolve_as_in_jinjas_sandbox(obj: dict, name: str) -> None:
    env = environment("fr", "text")
    ours, jinjas = env.getattr(obj, name), ImmutableSandboxedEnvironment.getattr(env, obj, name)
    assert type(ours) is type(jinjas)
    if isinstance(ours, Undefined):
        assert ours._undefined_message == jinjas._undefined_message
    elif callable(ours):
        assert ours == jinjas  # the same bound method of the same dict
    else:
        assert ours is jinjas


def test_a_field_named_like_a_dict_method_is_still_the_method() -> None:
    mail = Renderer().preview("ticket_created", "fr", sources={
        "text": "{{ ticket.ref }} {{ ticket.items is callable }} {{ ticket.nope is defined }}"})
    assert mail.text == "#1042 True False"


def test_the_example_command_errors_are_what_the_parser_answers() -> None:
    """Previews and the variable reference show the allowed values an agent really gets."""
    from postdesk.config import Settings
    from postdesk.lifecycle import Status
    from postdesk.templates import examples
    from postdesk.threading.commands import parse_commands
    lines = "\n".join(error["command"] for error in examples.COMMAND_ERRORS)
    parsed = parse_commands(lines + "\n\nBonjour", Settings())
    assert [{"line": p.line, "command": p.command, "problem": p.problem, "allowed": list(p.allowed)}
            for p in parsed.problems] == examples.COMMAND_ERRORS
    statuses = {value["status"] for value in (examples.TICKET, examples.PREVIOUS, *examples.HISTORY)}
    assert statuses <= {status.value for status in Status}
