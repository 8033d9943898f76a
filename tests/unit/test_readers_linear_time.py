"""Every reader of mail content runs in linear time: 256 KB of one adversarial filler each.

A pattern with nested or adjacent unbounded quantifiers (``[^@]+@``, ``\\s*x?\\s*``) tries every
start position against the rest of the input: a 40 kB ``In-Reply-To`` without ``@`` cost
8.5 s of the worker's CPU inside its write transaction. Each reader below gets 256 KB values
made of one filler repeated (the shapes that make careless patterns slow: no ``@``, only
``<``, open encoded-words, runs of blanks, half a tag...). No timing is asserted: each test has
a pytest-timeout far above what a linear pass needs (milliseconds) and far below what a
quadratic one costs on 256 KB: 43 times the 40 kB cost, about 6 minutes for that bug, and
over a minute for the cheapest quadratic pattern (``[^@]+@`` over ``a``: 1.2 s of CPU on
32 kB, 78 s on 256 kB). ``parse`` still gets a megabyte header: the SMTP edge takes lines up
to 1 MB, so that is the size it must read.
"""

from __future__ import annotations

import dataclasses

import pytest

from postdesk.desk.history import history_request
from postdesk.config import AgentAuthSettings, AgentSettings, QueueSettings, Settings
from postdesk.gateway.smtp import _looks_like_mail
from postdesk.mail import addresses, answers, charsets, fields, headers, htmlbody, quotes, tags
from postdesk.mail.automatic import automatic_reason
from postdesk.mail.filenames import safe_filename
from postdesk.mail.language import detect_language
from postdesk.mail.parse import parse
from postdesk.notify.compose import thread_topic
from postdesk.desk import routing
from postdesk.threading import commands
from postdesk.threading.trust import check_agent
from postdesk.threading.matchers import ReturnedMessage
from tests.helpers import make_mail

MEGABYTE = 1024 * 1024
SIZE = 256 * 1024  # a quadratic reader costs minutes here, a linear one milliseconds
FILLERS = ["a", "<", "@", "a@b ", "=?", "=?a?q?b?= ", " ", " \n", "[#", "[ #1", "re: ", "ticket ",
           "\\", "\u212a", "> ", "from: "]
# A word a pattern looks for, then a megabyte of blanks: "\s*x?\s*" tries each split of the run.
WORDS = ["re", "ticket", "history", "le", "bonjour", "[#", "#cc", "=?utf-8?q?", "a@b", "message-id:"]
BASE = parse(make_mail(sender="agent@desk.test"))
# An agent to authenticate (Authentication-Results is read), queues to route by keyword and
# language.
SETTINGS = Settings(agents=(AgentSettings("agent@desk.test", "Agent"),),
                    agent_auth=AgentAuthSettings(required=True, trusted_authserv_id="mx.desk.test"),
                    queues=(QueueSettings("billing", keywords=("invoice", "facture")),
                            QueueSettings("fr", languages=("fr",))))


def _mail_with(value: str):
    """The parsed mail of ``make_mail`` with ``value`` in its subject, text and every header."""
    return dataclasses.replace(
        BASE, subject=value, text=value,
        headers={**BASE.headers, **{name: (value,) for name in (
            "auto-submitted", "content-type", "return-path", "precedence", "x-priority",
            "importance", "authentication-results")}})


def _route(value: str):
    return routing.route(_mail_with(value), ["support@desk.test"], SETTINGS)


READERS = {
    "normalise_address": addresses.normalise_address,
    "normalise_message_id": addresses.normalise_message_id,
    "parse_message_ids": addresses.parse_message_ids,
    "is_noreply": addresses.is_noreply,
    "clean_header_value": headers.clean_header_value,
    "decode_words": charsets.decode_words,
    "decode_value": fields.decode_value,
    "mailboxes": lambda v: fields.mailboxes([v], "to", []),
    "mail_date": lambda v: fields.mail_date([v], []),
    "primary_language": fields.primary_language,
    "tag find": lambda v: tags.TagFormat("[#{id}]").find(v),
    "tag strip": lambda v: tags.TagFormat("[ACME #{id}]").strip(v),
    "mentioned_ticket": tags.mentioned_ticket,
    "strip_quotes": quotes.strip_quotes,
    "survey answer 1-7": answers.parse_survey_answer,
    "survey answer good-bad": lambda v: answers.parse_survey_answer(v, "good-bad"),
    "is_confirmation": answers.is_confirmation,
    "html_to_text": htmlbody.html_to_text,
    "sanitise_html": htmlbody.sanitise_html,
    "detect_language": detect_language,
    "safe_filename": lambda v: safe_filename(v, 1, "text/plain"),
    "automatic_reason": lambda v: automatic_reason(_mail_with(v), envelope_from=v),
    "check_agent": lambda v: check_agent(_mail_with(v), SETTINGS, "smtp"),
    "route": _route,
    "parse_commands": lambda v: commands.parse_commands(v, SETTINGS),
    "customer_closes": commands.customer_closes,
    "history_request": history_request,
    "thread_topic": thread_topic,
    "returned message-id": lambda v: ReturnedMessage._MESSAGE_ID.search(v.encode()[:65536]),
    "smtp looks like mail": lambda v: _looks_like_mail(v.encode()),
}


def megabyte_of(filler: str) -> str:
    return (filler * (MEGABYTE // len(filler) + 1))[:MEGABYTE]


def value_of(filler: str) -> str:
    """``SIZE`` characters of ``filler`` repeated."""
    return (filler * (SIZE // len(filler) + 1))[:SIZE]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("filler", FILLERS, ids=repr)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_reader_reads_a_long_value_of_one_filler_in_linear_time(reader, filler):
    READERS[reader](value_of(filler))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("word", WORDS)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_reader_reads_a_word_then_a_long_run_of_blanks_in_linear_time(reader, word):
    READERS[reader](word + value_of(" \t") + "x")


HEADER_FIELDS = ["From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To",
                 "References", "Date", "Content-Type", "Content-Language", "Auto-Submitted",
                 "Authentication-Results", "Return-Path"]
MAIL_FILLERS = ["a", "<", "=?", "a@b "]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("filler", MAIL_FILLERS, ids=repr)
@pytest.mark.parametrize("field", HEADER_FIELDS)
def test_parse_reads_a_megabyte_header_in_linear_time(field, filler):
    value = megabyte_of(filler).replace("\n", " ")
    raw = f"{field}: {value}\r\n".encode() + make_mail()
    parse(raw)
