"""Every refusal rule of template validation, with the exact sentence an admin reads."""

from __future__ import annotations

import pytest

from postdesk.errors import TemplateError
from postdesk.templates import Problem, validate
from postdesk.templates.environment import JINJA_FILTERS

TICKET_FIELDS = ("assignee, created_at, id, priority, queue, ref, requester, status, subject, "
                 "tag, updated_at")
JINJA_TESTS = ("boolean, callable, defined, divisibleby, eq, equalto, escaped, even, false, "
               "filter, float, ge, greaterthan, gt, in, integer, iterable, le, lessthan, lower, "
               "lt, mapping, ne, none, number, odd, sameas, sequence, string, test, true, "
               "undefined, upper")


def messages(key: str, part: str, source: str) -> list[str]:
    return [str(problem) for problem in validate(key, part, source)]


def test_a_good_template_has_no_problem() -> None:
    assert validate("ticket_created", "subject", "{{ ticket.tag }} Bien reçu") == []


def test_problem_reads_as_a_sentence() -> None:
    assert str(Problem("text", 4, "syntax error: x")) == "text, line 4: syntax error: x"
    assert str(Problem("subject", None, "renders empty")) == "subject: renders empty"


@pytest.mark.parametrize(("source", "expected"), [
    ("Bonjour {{ customer.name }\n", "text, line 1: syntax error: unexpected '}'"),
    ("a\nb\n{% if ticket.id %}x", "text, line 3: syntax error: Unexpected end of template. "
     "Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost "
     "block that needs to be closed is 'if'."),
    ("{% endfor %}", "text, line 1: syntax error: Encountered unknown tag 'endfor'."),
])
def test_syntax_errors_give_the_line(source: str, expected: str) -> None:
    assert messages("ticket_created", "text", source) == [expected]


def test_undeclared_variable() -> None:
    assert messages("ticket_created", "subject", "{{ ticket.tag }} {{ foo }}") == [
        "subject, line 1: uses undeclared variable 'foo' (allowed: desk, ticket, customer)"]


def test_loop_and_set_variables_are_not_undeclared() -> None:
    source = ("{% set who = customer.name %}{{ who }}\n"
              "{% for f in rejected %}{{ loop.index }} {{ f.filename }}{% endfor %}")
    assert validate("attachment_rejected", "text", source) == []


def test_each_undeclared_variable_on_its_line() -> None:
    assert messages("ticket_resolved", "text", "ok\n{{ ticket.ref }} {{ message.text }}\n"
                    "{{ agent.name }}") == [
        "text, line 2: uses undeclared variable 'message' "
        "(allowed: desk, ticket, customer, reopen_until)",
        "text, line 3: uses undeclared variable 'agent' "
        "(allowed: desk, ticket, customer, reopen_until)"]


def test_missing_field_found_by_rendering_the_examples() -> None:
    assert messages("ticket_created", "text", "Bonjour\n{{ ticket.nope }}") == [
        f"text, line 2: uses field 'nope', which does not exist here (fields: {TICKET_FIELDS})"]


def test_missing_nested_field() -> None:
    assert messages("ticket_created", "html", "{{ ticket.requester.phone }}") == [
        "html, line 1: uses field 'phone', which does not exist here (fields: address, name)"]


OUR_FILTERS = {"date", "datetime", "filesize", "status_label", "priority_label", "step_label"}


def test_unknown_filter() -> None:
    available = ", ".join(sorted(JINJA_FILTERS | OUR_FILTERS))
    assert messages("ticket_created", "text", "{{ ticket.subject|shout }}") == [
        f"text, line 1: uses unknown filter 'shout' (available: {available})"]


def test_safe_filter_is_unknown_even_in_html() -> None:
    assert messages("agent_new_ticket", "html", "{{ message.text|safe }}")[0].startswith(
        "html, line 1: uses unknown filter 'safe' (available: abs, capitalize,")


def test_nl2br_exists_only_in_html() -> None:
    assert validate("agent_new_ticket", "html", "{{ message.text|nl2br }}") == []
    assert messages("agent_new_ticket", "text", "{{ message.text|nl2br }}")[0].startswith(
        "text, line 1: uses unknown filter 'nl2br'")


def test_unknown_test() -> None:
    assert messages("ticket_created", "text", "x\n{% if ticket.id is prime %}y{% endif %}") == [
        f"text, line 2: uses unknown test 'prime' (available: {JINJA_TESTS})"]


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ticket._secret }}",
     ["text, line 1: uses the attribute '_secret', which templates may not access"]),
    ("{{ ticket['__class__'] }}",
     ["text, line 1: uses the attribute '__class__', which templates may not access"]),
    ("{{ ticket.subject.ljust(999999999) }}",
     ["text, line 1: uses the attribute 'ljust', which templates may not access"]),
    ("{{ '{:>99999999}'.format(1) }}",
     ["text, line 1: uses the attribute 'format', which templates may not access"]),
])
def test_private_and_blocked_attributes(source: str, expected: list[str]) -> None:
    assert messages("ticket_created", "text", source) == expected


INJECTIONS = {
    "{{ ''.__class__.__mro__ }}": [
        "text, line 1: uses the attribute '__class__', which templates may not access",
        "text, line 1: uses the attribute '__mro__', which templates may not access"],
    "{{ cycler.__init__.__globals__ }}": [
        "text, line 1: uses the attribute '__globals__', which templates may not access",
        "text, line 1: uses the attribute '__init__', which templates may not access",
        "text, line 1: uses undeclared variable 'cycler' (allowed: desk, ticket, customer)"],
    "{{ self.__init__ }}": [
        "text, line 1: uses the attribute '__init__', which templates may not access",
        "text, line 1: uses undeclared variable 'self' (allowed: desk, ticket, customer)"],
    "{{ request }}": [
        "text, line 1: uses undeclared variable 'request' (allowed: desk, ticket, customer)"],
    "{% for x in range(99999999) %}{{ x }}{% endfor %}": [
        "text, line 1: uses undeclared variable 'range' (allowed: desk, ticket, customer)"],
    "{{ lipsum(10**9) }}": [
        "text, line 1: uses undeclared variable 'lipsum' (allowed: desk, ticket, customer)"],
}


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_injection_is_refused(payload: str) -> None:
    assert messages("ticket_created", "text", payload) == INJECTIONS[payload]


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ticket.subject * 100000 }}", "text, line 1: is refused by the sandbox: '*' would build "
     "more than 10000 characters or items"),
    ("{{ ticket.id ** ticket.id }}", "text, line 1: is refused by the sandbox: '**' would build "
     "a number too large to show"),
    ("{{ '%0999999d' % ticket.id }}", "text, line 1: is refused by the sandbox: formatting text "
     "with '%' is not allowed; join text with '~'"),
    ("x\n{{ ticket['_' ~ '_class__'] }}", "text, line 2: is refused by the sandbox: access to "
     "attribute '__class__' of 'dict' object is unsafe."),
    ("{% set d = ticket.requester %}{{ d.update({'name': 'x'}) }}", "text, line 1: is refused "
     "by the sandbox: access to attribute 'update' of 'dict' object is unsafe."),
])
def test_what_only_the_sandbox_sees_is_refused_when_rendering_examples(
        source: str, expected: str) -> None:
    assert messages("ticket_created", "text", source) == [expected]


def test_other_templates_cannot_be_used() -> None:
    assert messages("ticket_created", "html", "{% include 'secrets.html' %}") == [
        "html, line 1: uses another template (include, import or extends); "
        "each template must stand alone"]


def test_autoescape_cannot_be_switched_off() -> None:
    source = "<p>\n{% autoescape false %}{{ message.text }}{% endautoescape %}</p>"
    assert messages("agent_new_ticket", "html", source) == [
        "html, line 2: switches autoescape; customer text must always be escaped"]


def test_subject_on_two_lines() -> None:
    assert messages("ticket_created", "subject", "{{ ticket.tag }} Bien reçu\nsuite") == [
        "subject, line 1: renders with a line break; a subject must be a single line"]


def test_subject_with_a_multiline_variable() -> None:
    assert messages("agent_new_ticket", "subject", "\n{{ ticket.tag }} {{ message.text }}") == [
        "subject, line 2: renders with a line break; a subject must be a single line"]


def test_empty_subject() -> None:
    assert messages("ticket_created", "subject", "{% if ticket.id > 10**6 %}{{ ticket.tag }}"
                    "{% endif %}") == [
        "subject: renders empty; a subject must say what the mail is about"]


def test_subject_without_the_ticket_tag() -> None:
    assert messages("ticket_created", "subject", "Demande {{ ticket.ref }}") == [
        "subject: does not contain the ticket tag {{ ticket.tag }}; "
        "replies to this mail would not find their ticket"]


def test_history_subject_needs_no_tag() -> None:
    assert validate("ticket_history", "subject", "Vos tickets chez {{ desk.name }}") == []


def test_unknown_key_or_part_is_a_caller_error() -> None:
    with pytest.raises(TemplateError, match="unknown template key 'nope'"):
        validate("nope", "text", "x")
    with pytest.raises(TemplateError, match="unknown template part 'body'"):
        validate("ticket_created", "body", "x")
