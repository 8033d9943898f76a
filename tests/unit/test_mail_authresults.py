"""The trusted server's verdict: only its topmost block of Authentication-Results, read as
written; a block that cannot be read proves nothing and says why."""

from __future__ import annotations

import pytest

from postdesk import config
from postdesk.mail.authresults import dmarc_failure, trusted_results
from postdesk.mail.parse import parse
from postdesk.threading.trust import check_agent
from tests.helpers import make_mail

ID = "mx.acme.test"
UNREADABLE = f"{ID}; spf=softfail smtp.mailfrom=m@evil.test smtp.helo=[203.0.113.9]"


def mail(*fields: str, sender: str = "bob@acme.test"):
    """A mail as the MX hands it on: ``fields`` ("Name: value") on top, in order."""
    top = "".join(f"{field}\r\n" for field in fields).encode()
    return parse(top + make_mail(sender, "Re: [#1] x", "#priority urgent\n"))


def ar(value: str) -> str:
    return f"Authentication-Results: {value}"


def methods(block) -> list[tuple[str, str]]:
    return [(r.method, r.result) for r in block.results]


def test_only_the_topmost_block_counts():
    block = trusted_results(mail(ar(f"{ID}; spf=fail smtp.mailfrom=m@evil.test"),
                                 "Received: from evil by mx.acme.test",
                                 ar(f"{ID}; dkim=pass header.d=acme.test")), ID)
    assert (block.fields, methods(block), block.unreadable) == (1, [("spf", "fail")], None)


def test_the_block_is_every_adjacent_field_of_the_trusted_server():
    block = trusted_results(mail(ar(f"{ID}; dmarc=pass header.from=acme.test"),
                                 ar(f"{ID}; dkim=pass header.d=acme.test"),
                                 "Received: from a by mx.acme.test",
                                 ar(f"{ID}; spf=pass smtp.mailfrom=bob@acme.test")), ID)
    assert methods(block) == [("dmarc", "pass"), ("dkim", "pass")]


def test_fields_of_other_servers_above_are_passed_over():
    block = trusted_results(mail("Received: from mx by imap.acme.test",
                                 ar("imap.acme.test; spf=pass smtp.helo=[10.0.0.1]"),
                                 ar("imap.acme.test; dkim=pass header.d=acme.test"),
                                 ar(f"MX.ACME.TEST; dkim=fail header.d=acme.test")), ID)
    assert methods(block) == [("dkim", "fail")]


@pytest.mark.parametrize("fields", [
    (ar(UNREADABLE), ar(f"{ID}; dkim=pass header.d=acme.test")),
    (ar(f"{ID}; dkim=pass header.d=acme.test"), ar(UNREADABLE)),
    (ar(f"(our MX) {ID}; spf=pass smtp.helo=[203.0.113.9]"),),
    (ar(f"{ID}; dkim=pass (" + "(" * 3000 + ") header.d=acme.test"),),  # RecursionError inside
    (ar(f"{ID}; dkim=pass header.d=acme.test header.b=" + "A" * 20_000),),
], ids=["unreadable-above-a-pass", "unreadable-in-the-block", "comment-before-the-id",
        "nested-comments", "over-long"])
def test_an_unreadable_block_proves_nothing(fields):
    parsed = mail(*fields)
    block = trusted_results(parsed, ID)
    assert block.found and block.unreadable and block.results == ()
    check = check_agent(parsed, settings(), "smtp")
    assert check.agent is None and check.claimed is not None
    assert "cannot be read" in check.reason and ID in check.reason
    assert dmarc_failure(parsed, ID) is not None


def test_a_readable_pass_proves_the_agent():
    check = check_agent(mail(ar(f"{ID}; dkim=pass header.d=acme.test")), settings(), "smtp")
    assert check.agent is not None and check.reason == "dkim=pass header.d=acme.test"


def test_no_trusted_server_set_proves_nothing():
    check = check_agent(mail(ar(f"{ID}; dkim=pass header.d=acme.test")), settings(""), "smtp")
    assert check.agent is None and "trusted_authserv_id" in check.reason


def test_an_encoded_word_in_a_result_is_never_decoded():
    sender = "=?l1?q?a=3Bdkim=pass_header.d=3Dacme.test=3Bx=y_p.q=b?=@evil.test"
    parsed = mail(ar(f"{ID}; spf=fail smtp.mailfrom={sender}"))
    assert methods(trusted_results(parsed, ID)) == [("spf", "fail")]
    assert check_agent(parsed, settings(), "smtp").agent is None


def test_an_unreadable_header_of_another_server_is_not_ours():
    block = trusted_results(mail(ar("other.test; spf=pass smtp.helo=[1.2.3.4]"),
                                 ar(f"{ID}; dkim=pass header.d=acme.test")), ID)
    assert methods(block) == [("dkim", "pass")] and block.unreadable is None


@pytest.mark.parametrize(("fields", "expected"), [
    ((ar(f"{ID}; dmarc=fail (p=reject) header.from=client.test"),),
     "dmarc=fail header.from=client.test by mx.acme.test"),
    ((ar(f"{ID}; dmarc=pass header.from=client.test"),), None),
    ((ar(f"{ID}; dmarc=pass header.from=client.test"),  # a forged fail below changes nothing
      "Received: x", ar(f"{ID}; dmarc=fail header.from=client.test")), None),
    ((ar(f"other.test; dmarc=fail header.from=client.test"),), None),
    ((), None),
])
def test_dmarc_failure(fields, expected):
    assert dmarc_failure(mail(*fields, sender="julie@client.test"), ID) == expected


def test_no_trusted_server_means_no_dmarc_verdict():
    assert dmarc_failure(mail(ar(f"{ID}; dmarc=fail header.from=client.test")), "") is None


def settings(authserv_id: str = ID) -> config.Settings:
    return config.Settings(agents=(config.AgentSettings(address="bob@acme.test", name="Bob"),),
                           agent_auth=config.AgentAuthSettings(trusted_authserv_id=authserv_id))
