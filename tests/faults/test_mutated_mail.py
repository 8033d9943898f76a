"""Real mails mutated as an attacker or a broken client would, through the whole pipeline.

Each example takes a mail of our corpus (``tests/fixtures/mail``) and applies a few
mutations: a header duplicated, a header value cut short, a header lengthened to a megabyte,
encoded words put into every field, the body wrapped in nested multipart levels. The mutated
bytes go through the real intake and the real worker on SQLite. Whatever happens, nothing is
lost and nothing is left hanging: every mail ends on a ticket, as a duplicate, or in quarantine
with its reason, and the next plain mail is still processed. The number of examples is bounded
so the suite stays fast; the megabyte values are where the work per mail must stay bounded.
"""

from __future__ import annotations

import email
import email.policy
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from tests.faults.support import sqlite_app
from tests.helpers import make_mail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
SOURCES = sorted(FIXTURES.glob("*.eml"))
ENVELOPE = Envelope("sender@example.org", ("support@desk.test",), "smtp", "127.0.0.1")
MEGABYTE = 1024 * 1024
FIELDS = ["From", "To", "Cc", "Reply-To", "Sender", "Subject", "Message-ID", "In-Reply-To",
          "References", "Date", "Content-Type", "Auto-Submitted", "Authentication-Results",
          "Return-Path", "Received"]
# What a megabyte of one header may be made of: the shapes that make careless patterns slow.
FILLERS = ["a", "<", "<a", "@", "=?", "=?utf-8?q?a?=", " ", "\t", "[#1", "Re: ", "x@y.", ";", "(",
           "\\", "\""]


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (folded lines kept with their field) and the body, of ``raw``."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields, body


def _join(fields: list[bytes], body: bytes) -> bytes:
    return b"\n".join(fields) + b"\n\n" + body


def duplicate(draw, fields, body):
    if fields:
        index = draw(st.integers(0, len(fields) - 1))
        fields.insert(index, fields[index])
    return fields, body


def truncate(draw, fields, body):
    if fields:
        index = draw(st.integers(0, len(fields) - 1))
        fields[index] = fields[index][: draw(st.integers(0, len(fields[index])))]
    return fields, body


def lengthen(draw, fields, body):
    name = draw(st.sampled_from(FIELDS)).encode()
    filler = draw(st.sampled_from(FILLERS)).encode()
    value = filler * -(-MEGABYTE // len(filler))  # at least a megabyte
    return fields + [name + b": " + value], body


def encoded_words(draw, fields, body):
    word = draw(st.sampled_from(["=?utf-8?q?dkim=3Dpass_header.d=3Ddesk.test?=",
                                 "=?utf-8?b?PGV2aWxAZXZpbC50ZXN0Pg==?=",
                                 "=?iso-8859-1?q?=E9t=E9?=", "=?x-unknown?q?abc?=",
                                 "=?us-ascii?Q?ABC / 123?=", "=?utf-8?b?!!!?="]))
    return [_with_word(field, word) for field in fields], body


def _with_word(field: bytes, word: str) -> bytes:
    name, colon, value = field.partition(b":")
    return name + colon + b" " + word.encode() + value if colon else field


def nest(draw, fields, body):
    depth = draw(st.integers(1, 60))
    kept = [f for f in fields if not f.lower().startswith((b"content-type", b"mime-version"))]
    wrapped = body
    for level in range(depth):
        boundary = f"b{level}".encode()
        wrapped = (b"--" + boundary + b"\nContent-Type: text/plain\n\n" + wrapped + b"\n--"
                   + boundary + b"--\n")
        if level < depth - 1:
            wrapped = b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\n\n" + wrapped
    top = f'Content-Type: multipart/mixed; boundary="b{depth - 1}"'.encode()
    return kept + [b"MIME-Version: 1.0", top], wrapped


MUTATIONS = {"duplicate": duplicate, "truncate": truncate, "lengthen": lengthen,
             "encoded-words": encoded_words, "nest": nest}


@st.composite
def mutated_mail(draw) -> tuple[str, bytes]:
    source = draw(st.sampled_from(SOURCES))
    fields, body = _split(source.read_bytes())
    names = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3))
    for name in names:
        fields, body = MUTATIONS[name](draw, fields, body)
    return f"{source.name} + {', '.join(names)}", _join(fields, body)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    app = sqlite_app(tmp_path_factory.mktemp("mutated"), "[limits]\ninbound_per_sender = 100000\n")
    yield app
    app.db.dispose()


_plain = itertools.count()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(mutated_mail())
def test_a_mutated_real_mail_ends_as_a_ticket_a_duplicate_or_a_quarantine(desk, case):
    story, raw = case
    worker = desk.worker()
    stored = desk.intake().store(raw, ENVELOPE)
    worker.process_until_idle()
    plain = desk.intake().store(make_mail(sender=f"plain{next(_plain)}@example.com"), ENVELOPE)
    worker.process_until_idle()
    with desk.db.reader() as session:
        row, after = inbound.get(session, stored), inbound.get(session, plain)
        assert row.status in {"processed", "discarded", "quarantined"}, story
        if row.status == "processed":
            assert row.ticket_id is not None or row.outcome, story
        else:
            assert (row.error if row.status == "quarantined" else row.outcome), story
        assert (after.status, after.ticket_id is not None) == ("processed", True), story


def test_the_mutations_make_what_they_say():
    """The mutations are themselves code: check each does its job on one real mail."""
    fields, body = _split((FIXTURES / "multipart-alternative.eml").read_bytes())
    data = st.data()

    @settings(max_examples=5, deadline=None)
    @given(data)
    def check(d):
        draw = d.draw
        assert len(duplicate(draw, list(fields), body)[0]) == len(fields) + 1
        grown = lengthen(draw, list(fields), body)[0]
        assert len(grown[-1]) >= MEGABYTE
        words = encoded_words(draw, list(fields), body)[0]
        assert all(b"=?" in f for f in words if b":" in f)
        nested = email.message_from_bytes(_join(*nest(draw, list(fields), body)),
                                          policy=email.policy.compat32)
        assert nested.is_multipart()

    check()


SWEEP_FILLERS = ["a", "=?"]  # no "@" and open encoded-words: the shapes that were quadratic


@pytest.mark.timeout(120)
@pytest.mark.parametrize("field", FIELDS)
def test_a_megabyte_of_each_filler_in_each_field_is_processed_in_linear_time(desk, field):
    """Deterministic: every field gets a megabyte of each filler that once made a pattern
    quadratic (no ``@``, open encoded-words, only ``<``, many ids); each mail ends with a reason
    and the next plain mail is processed. The timeout is far above a linear pass."""
    source = (FIXTURES / "multipart-alternative.eml").read_bytes()
    fields, body = _split(source)
    worker = desk.worker()
    for filler in SWEEP_FILLERS:
        value = filler.encode() * (MEGABYTE // len(filler))
        stored = desk.intake().store(_join(fields + [field.encode() + b": " + value], body),
                                     ENVELOPE)
        worker.process_until_idle()
        with desk.db.reader() as session:
            row = inbound.get(session, stored)
            assert row.status in {"processed", "discarded", "quarantined"}, (field, filler)
    plain = desk.intake().store(make_mail(sender=f"plain{next(_plain)}@example.com"), ENVELOPE)
    worker.process_until_idle()
    with desk.db.reader() as session:
        assert inbound.get(session, plain).status == "processed"
