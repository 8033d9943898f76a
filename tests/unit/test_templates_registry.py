"""The registry of template keys stays coherent: every key of the design, examples shaped exactly
like their declared fields, types from one vocabulary, no field hidden by a dict method, the
layer rule, and docs/templates.md generated from the current registry."""

from __future__ import annotations

import ast
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from postdesk.templates import KEYS, LOCALES, PARTS, example_values
from postdesk.templates.fields import Field
from postdesk.templates.reference import BEGIN, END, markdown

ROOT = Path(__file__).resolve().parents[2]
DESIGN_KEYS = ["ticket_created", "agent_new_ticket", "agent_reply", "customer_replied",
               "pending_reminder", "auto_resolved", "ticket_resolved", "followup_created",
               "survey_request", "survey_thanks", "survey_review_alert", "escalation_update",
               "attachment_rejected", "command_error", "ticket_history"]
SCALARS = {"text": str, "integer": int, "boolean": bool, "date": date,
           "date and time": datetime, "object": dict}


def test_every_key_of_the_design_is_declared() -> None:
    assert [k for k in KEYS if k in DESIGN_KEYS] == DESIGN_KEYS
    assert set(KEYS) - set(DESIGN_KEYS) == {"ticket_merged", "agent_ticket_moved"}  # #merge, #queue
    assert PARTS == ("subject", "text", "html") and LOCALES == ("fr", "en")


@pytest.mark.parametrize("key", DESIGN_KEYS)
def test_common_variables(key: str) -> None:
    names = KEYS[key].names
    assert names[0] == "desk" and ("ticket" in names) == (key != "ticket_history")
    assert KEYS[key].audience in ("customer", "agent", "admin")


def check_value(type_: str, fields: tuple[Field, ...], value: Any, where: str) -> None:
    base = type_.removesuffix(" or null")
    if value is None:
        assert type_.endswith(" or null"), f"{where} is null but typed {type_}"
        return
    if base.startswith("list of"):
        assert isinstance(value, list), where
        item_type = {"list of objects": "object", "list of text": "text"}[base]
        for item in value:
            check_value(item_type, fields, item, f"{where}[]")
        return
    expected = SCALARS[base]
    assert isinstance(value, expected), f"{where}: {value!r} is not {type_}"
    if expected is int:
        assert not isinstance(value, bool), where
    if expected is date:
        assert isinstance(value, datetime) == (base == "date and time"), where
    if expected is dict:
        assert sorted(value) == sorted(field.name for field in fields), f"{where} fields"
        for field in fields:
            check_value(field.type, field.fields, value[field.name], f"{where}.{field.name}")


@pytest.mark.parametrize("key", DESIGN_KEYS)
def test_examples_have_exactly_the_declared_shape(key: str) -> None:
    for variable in KEYS[key].variables:
        check_value(variable.type, variable.fields, variable.example, variable.name)


def all_fields(fields: tuple[Field, ...]):
    for field in fields:
        yield field
        yield from all_fields(field.fields)


def test_no_name_is_hidden_by_a_dict_or_list_method() -> None:
    hidden = set(dir(dict)) | set(dir(list)) | set(dir(str))
    for key in KEYS.values():
        for variable in key.variables:
            clashes = {f.name for f in all_fields(variable.fields)} & hidden
            assert not clashes, f"{key.name}.{variable.name}: {clashes}"


def test_example_values_are_fresh_mappings() -> None:
    first = example_values("ticket_created")
    first["desk"] = None
    assert example_values("ticket_created")["desk"] is not None


def test_templates_import_only_what_the_layers_allow() -> None:
    allowed = ("postdesk.errors", "postdesk.config", "postdesk.mail", "postdesk.lifecycle",
               "postdesk.localtime",
               "postdesk.templates")
    for path in (ROOT / "postdesk" / "templates").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("postdesk"):
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("postdesk") or \
                        alias.name.startswith(allowed), f"{path.name} imports {alias.name}"


def test_docs_hold_the_current_generated_reference() -> None:
    text = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    generated = text.split(BEGIN + "\n", 1)[1].split("\n" + END, 1)[0]
    assert generated == markdown(), \
        "run: python -m postdesk.templates.reference --write docs/templates.md"


def test_docs_name_every_key_and_every_variable() -> None:
    text = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    for key in KEYS.values():
        assert f"### `{key.name}`" in text and f"| `{key.name}` |" in text
        for variable in key.variables:
            assert f"| `{variable.name}` |" in text
