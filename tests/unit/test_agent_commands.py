"""What an agent's mail says, read without the store: command lines with their numbers, where
the text begins, and whether the agent signed the reply themselves."""

from __future__ import annotations

import pytest

from postdesk.config import Settings
from postdesk.desk.agent_mail import signed
from postdesk.threading.commands import parse_commands


def test_problems_carry_the_line_number_and_the_whole_line():
    parsed = parse_commands("#priority high\n\n#status waiting\n#asign me\nMerci.\n", Settings())
    assert [(p.line, p.command, p.problem) for p in parsed.problems] == [
        (3, "#status waiting", "invalid_value"), (4, "#asign me", "unknown_command")]
    assert [(c.number, c.line) for c in parsed.commands] == [(1, "#priority high")]
    assert (parsed.text_line, parsed.text) == (5, "Merci.")


def test_text_line_skips_blank_lines_after_the_commands():
    parsed = parse_commands("#status resolved\n\n\nBonjour Julie,\nC'est fait.\n", Settings())
    assert parsed.text_line == 4 and parsed.text.startswith("Bonjour Julie,")
    assert parse_commands("Bonjour\n", Settings()).text_line == 1


@pytest.mark.parametrize("text, name, expected", [
    ("C'est corrigé.\n\nAlice\n", "Alice", True),
    ("C'est corrigé.\n\nAlice Martin\nSupport niveau 2\n", "Alice Martin", True),
    ("C'est corrigé.\n\nAlice\nSupport\n", "Alice Martin", True),  # first name
    ("C'est corrigé.\nCordialement, Alice", "Alice", True),
    ("C'est corrigé.\nBonne journée,\n-- Alice.", "Alice", True),
    ("C'est corrigé.\n", "Alice", False),
    ("Alice, pouvez-vous regarder ?\nMerci\n" + "x\n" * 3, "Alice", False),  # not at the end
    ("Alicebot a répondu.\n", "Alice", False),
    ("C'est corrigé.\n\nAlice\n", "", False),
])
def test_signed(text, name, expected):
    assert signed(text, name) is expected
