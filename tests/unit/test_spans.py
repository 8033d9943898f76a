"""Spans typed on the command line (``--older-than``, ``report --since``): ``12h``, ``30d``, ``12w``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from postdesk.cli.spans import older_than, parse_span


@pytest.mark.parametrize(("text", "span"), [
    ("12h", timedelta(hours=12)), ("30d", timedelta(days=30)), (" 90D ", timedelta(days=90)),
    ("12w", timedelta(weeks=12)), ("0d", timedelta(0)),
    ("30", None), ("d", None), ("-3d", None), ("1.5d", None), ("3m", None), ("123456d", None),
    ("", None), ("30d; rm", None),
])
def test_parse_span(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize(("text", "message"), [
    ("30", "--older-than '30' is not a span: write e.g. 12h, 30d or 12w"),
    ("0h", "--older-than '0h' is an empty span: write e.g. 12h, 30d or 12w"),
])
def test_older_than_refuses_what_is_not_a_span_with_what_to_write(text, message):
    with pytest.raises(ValueError) as caught:
        older_than(text)
    assert str(caught.value) == message
