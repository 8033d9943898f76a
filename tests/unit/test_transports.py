"""The SMTP transport's set-up: a TLS context only when the relay is reached over TLS, built
once per transport, never per mail; nothing is connected before the first mail."""

from __future__ import annotations

import ssl

import pytest

from postdesk.config import OutboundSettings
from postdesk.notify import transports
from postdesk.notify.transports import MaildirTransport, SmtpTransport


@pytest.fixture
def contexts_made(monkeypatch):
    made = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(transports.ssl, "create_default_context", counting)
    return made


def test_a_plain_relay_gets_no_tls_context(contexts_made):
    transport = SmtpTransport(OutboundSettings(transport="smtp", host="127.0.0.1"), environ={})
    assert transport.context is None and contexts_made == []


@pytest.mark.parametrize("mode", [{"starttls": True}, {"tls": True, "port": 465}])
def test_a_tls_relay_gets_one_context_for_all_its_mails(contexts_made, mode):
    transport = SmtpTransport(OutboundSettings(transport="smtp", **mode), environ={})
    assert isinstance(transport.context, ssl.SSLContext) and len(contexts_made) == 1
    assert transport.context.verify_mode == ssl.CERT_REQUIRED and transport.context.check_hostname


def test_nothing_is_connected_before_the_first_mail_and_close_is_harmless(tmp_path):
    transport = SmtpTransport(OutboundSettings(transport="smtp", port=1), environ={})
    transport.close()
    MaildirTransport(str(tmp_path / "out")).close()
    assert transport.connections == 0
