"""``#cc add|remove`` takes exactly one addr-spec; anything else is a problem for the agent."""

from __future__ import annotations

import pytest

from postdesk.config import Settings
from postdesk.threading.commands import one_address, parse_commands


@pytest.mark.parametrize(("text", "expected"), [
    ("x@y.test", "x@y.test"),
    ("<X@Y.test>", "x@y.test"),
    ("jos\u00e9@y.test", "jos\u00e9@y.test"),
    ("x@y.test,bcc@evil.test", None),
    ("x@y.test;bcc@evil.test", None),
    ("a@b@c", None),
    ("x@y.test>,<bcc@evil.test", None),
    ('"a b"@y.test', None),
    ("x@", None),
    ("@y.test", None),
    ("Bob<x@y.test>", None),
])
def test_one_address(text: str, expected: str | None) -> None:
    assert one_address(text) == expected


@pytest.mark.parametrize("line", ["#cc add x@y.test,bcc@evil.test", "#cc add a@b@c",
                                  "#cc add x@y.test bcc@evil.test", "#cc remove a@b@c"])
def test_a_cc_command_with_anything_but_one_address_is_a_problem(line: str) -> None:
    parsed = parse_commands(f"{line}\n\nHello", Settings())
    assert parsed.commands == []
    assert [p.problem for p in parsed.problems] == ["invalid_value"]
