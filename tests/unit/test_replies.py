"""The named SMTP replies agree with themselves: name, code, enhanced code (RFC 3463) and class."""

from __future__ import annotations

import re

import pytest

from postdesk.gateway import replies
from postdesk.gateway.replies import Reply

ALL = replies.all_replies()
NAME = re.compile(r"R(?P<code>[245]\d\d)_[A-Z0-9_]+")
ENHANCED = re.compile(r"(?P<cls>[245])\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})")


def test_there_are_replies_for_every_outcome():
    codes = {(reply.code, reply.enhanced) for reply in ALL.values()}
    needed = {
        (250, "2.0.0"), (250, "2.1.5"), (421, "4.3.2"), (451, "4.3.0"), (452, "4.3.1"),
        (503, "5.5.1"), (550, "5.1.1"), (552, "5.3.4"), (554, "5.6.0"),
    }
    assert needed <= codes


@pytest.mark.parametrize("name", sorted(ALL))
def test_name_code_and_class_agree(name):
    reply = ALL[name]
    name_match = NAME.fullmatch(name)
    enhanced_match = ENHANCED.fullmatch(reply.enhanced)
    assert name_match, f"{name}: names are R<code>_<WHAT>"
    assert int(name_match["code"]) == reply.code
    assert enhanced_match, f"{name}: {reply.enhanced!r} is not an RFC 3463 code"
    assert int(enhanced_match["cls"]) == reply.code // 100


@pytest.mark.parametrize("name", sorted(ALL))
def test_wire_line_is_one_clean_line(name):
    reply = ALL[name]
    line = reply.format(id=1, max_bytes=2, max_line=3)
    assert line.startswith(f"{reply.code} {reply.enhanced} ")
    assert str(reply).startswith(f"{reply.code} {reply.enhanced} ")
    assert "\r" not in line and "\n" not in line
    assert line.isascii() and "{" not in line


def test_format_fills_the_text_only():
    assert replies.R250_QUEUED.format(id=42) == "250 2.0.0 Queued as 42"
    assert str(replies.R451_TRY_LATER) == "451 4.3.0 Local error, try again later"


def test_replies_are_frozen_values():
    with pytest.raises(AttributeError):
        replies.R250_OK.code = 550  # type: ignore[misc]
    assert Reply(250, "2.0.0", "OK") == replies.R250_OK
