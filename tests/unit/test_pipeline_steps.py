"""The pipeline's step list is checked when ``gateway/steps.py`` loads, and the enums that
replaced strings keep the stored and printed values."""

from __future__ import annotations

import json
import types
from pathlib import Path as FilePath

import pytest

from postdesk import errors
from postdesk.desk.arrival import Path
from postdesk.gateway import steps
from postdesk.lifecycle import CustomerReply, InboundStatus, Status
from postdesk.store import inbound
from postdesk.threading.decide import Action


def test_every_step_of_the_pipeline_is_registered_in_order():
    assert steps.STEPS == ("parse", "dedupe", "classify", "authenticate", "flood", "history",
                           "thread", "survey", "record", "notify")
    assert all(callable(steps.REGISTRY[name]) for name in steps.STEPS)


def test_an_unknown_or_repeated_step_name_is_refused():
    with pytest.raises(steps.UnknownStep, match="'pasre'"):
        steps.checked(("pasre", "dedupe"))
    with pytest.raises(steps.UnknownStep, match="twice"):
        steps.checked(("parse", "parse"))
    assert steps.checked(("parse", "notify")) == ("parse", "notify")


def test_a_typo_in_the_step_list_fails_when_the_module_loads():
    source = FilePath(steps.__file__).read_text(encoding="utf-8")
    assert '"survey",' in source
    module = types.ModuleType("postdesk.gateway.steps_with_a_typo")
    code = compile(source.replace('"survey",', '"survy",', 1), steps.__file__, "exec")
    with pytest.raises(LookupError, match="no such pipeline step: 'survy'") as raised:
        exec(code, module.__dict__)  # noqa: S102 - the module's own source, one name changed
    assert type(raised.value).__name__ == "UnknownStep"  # the copy's own class


def test_enums_keep_the_stored_and_printed_values():
    assert [s.value for s in InboundStatus] == ["received", "processing", "processed",
                                                "discarded", "quarantined"]
    assert (inbound.RECEIVED, inbound.QUARANTINED) == ("received", "quarantined")
    assert (errors.Discard.status, errors.Quarantine.status) == ("discarded", "quarantined")
    assert json.dumps({"status": InboundStatus.PROCESSED, "ticket": Status.PENDING}) == \
        '{"status": "processed", "ticket": "pending"}'
    assert [a.value for a in Action] == ["new", "append", "reopen", "follow-up"]
    assert {a.value for a in Action} - {"new"} == {c.value for c in CustomerReply}
    assert f"{Path.FOLLOW_UP}" == "follow-up"
