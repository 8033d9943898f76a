"""``[logging] format = "json"``: one JSON object per line, addresses redacted."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys

import pytest

from postdesk import config
from postdesk.errors import ConfigError
from postdesk.runtime.logs import JsonFormatter, formatter


def sha8(address: str) -> str:
    return "addr:" + hashlib.sha256(address.encode()).hexdigest()[:8]


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("postdesk.gateway.worker", logging.WARNING, __file__, 1, message,
                            args, exc_info=exc_info)
    rec.__dict__.update(extra)
    return rec


def test_a_line_is_one_object_with_time_level_logger_and_message():
    line = JsonFormatter().format(record("processed inbound=%s", 7))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "postdesk.gateway.worker"
    assert data["message"] == "processed inbound=7"
    assert data["time"].endswith("+00:00") and "T" in data["time"]
    assert "ticket" not in data and "inbound" not in data and "step" not in data


def test_the_ticket_inbound_and_step_of_a_mail_are_fields():
    data = json.loads(JsonFormatter().format(record("x", ticket=12, inbound=40, step="thread")))
    assert (data["ticket"], data["inbound"], data["step"]) == (12, 40, "thread")


def test_an_unknown_ticket_is_left_out():
    data = json.loads(JsonFormatter().format(record("x", ticket=None, inbound=3)))
    assert "ticket" not in data and data["inbound"] == 3


def test_addresses_are_redacted_in_the_message_its_arguments_and_the_traceback():
    try:
        raise ValueError("bad sender carol@customer.example")
    except ValueError:
        rec = record("claims agent %s", "alice@acme.example", exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "@" not in line
    data = json.loads(line)
    assert sha8("alice@acme.example") in data["message"]
    assert "Traceback" in data["message"] and "ValueError" in data["message"]
    assert sha8("carol@customer.example") in data["message"]


def test_redaction_can_be_turned_off():
    data = json.loads(JsonFormatter(redact_addresses=False).format(record("to %s", "a@b.example")))
    assert data["message"] == "to a@b.example"


def test_hostile_text_stays_one_line_of_valid_json():
    text = 'line\nbreak "quote" \\ back \x00 nul \u2028 sep é'
    line = JsonFormatter().format(record("%s", text))
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == text


def test_a_handler_writes_one_parseable_line_per_record():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("postdesk.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("first %s", "x@y.example", extra={"inbound": 1})
        try:
            1 / 0
        except ZeroDivisionError:
            logger.exception("second")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["inbound"] == 1 and "ZeroDivisionError" in second["message"]


def test_text_stays_the_default_and_other_formats_are_refused(tmp_path):
    assert config.load(None, environ={}).logging.format == "text"
    path = tmp_path / "p.toml"
    path.write_text('[logging]\nformat = "xml"\n')
    with pytest.raises(ConfigError, match="logging.format"):
        config.load(path, environ={})
    path.write_text('[logging]\nformat = "json"\n')
    assert config.load(path, environ={}).logging.format == "json"
