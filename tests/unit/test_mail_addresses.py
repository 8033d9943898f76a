"""Addresses and Message-IDs normalise to one comparable form, or to None."""

from __future__ import annotations

import pytest

from postdesk.mail.addresses import (
    MAX_MESSAGE_IDS,
    domain_of,
    is_noreply,
    normalise_address,
    normalise_message_id,
    parse_message_ids,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jean@exemple.fr", "jean@exemple.fr"),
        ("  Jean.Dupont@Exemple.FR \n", "jean.dupont@exemple.fr"),
        ("<bob@example.com>", "bob@example.com"),
        ("mailto:Bob@Example.com", "bob@example.com"),
        ("user+tag@sub.example.co.uk", "user+tag@sub.example.co.uk"),
        ("josé@bücher.example", "josé@xn--bcher-kva.example"),
        ("a@ÉCOLE.fr", "a@xn--cole-9oa.fr"),
        ("trailing@dot.example.", "trailing@dot.example"),
        ("root@localhost", "root@localhost"),
        ("", None),
        (None, None),
        ("no-at-sign", None),
        ("two@@example.com", None),
        ("a@b@example.com", None),
        ("@example.com", None),
        ("user@", None),
        ("user@nodot", None),
        ("user name@example.com", None),
        ("user@exa mple.com", None),
        ("user@-bad.example", None),
        ("user@bad..example", None),
        ("user\r\n@example.com", None),
        ("user@exa\n.com", None),  # a line end inside the domain: a header's, never an address's
        ("user@exa\r\n.com", None),
        ("user@example.com\n.evil", None),
        ("Bob <bob@example.com>", None),
        ("x" * 250 + "@example.com", None),
    ],
)
def test_normalise_address(raw: str | None, expected: str | None) -> None:
    assert normalise_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Jean@Exemple.FR", "exemple.fr"), ("x@bücher.example", "xn--bcher-kva.example"), ("nope", None), (None, None)],
)
def test_domain_of(raw: str | None, expected: str | None) -> None:
    assert domain_of(raw) == expected


@pytest.mark.parametrize(
    "address",
    [
        "noreply@shop.example",
        "no-reply@shop.example",
        "No_Reply@shop.example",
        "no.reply@shop.example",
        "donotreply@bank.example",
        "do-not-reply@bank.example",
        "do_not_reply@bank.example",
        "ne-pas-repondre@impots.example",
        "nepasrepondre@banque.example",
        "ne_pas_répondre@mairie.example",
        "MAILER-DAEMON@mx.example",
        "mailer_daemon@mx.example",
        "postmaster@example.com",
        "bounce@lists.example",
        "bounces+abc=example.com@lists.example",
        "bounce-123-456@mail.example",
        "notifications-noreply@github.example",
        "noreply+ticket@desk.example",
    ],
)
def test_is_noreply(address: str) -> None:
    assert is_noreply(address)


@pytest.mark.parametrize(
    "address",
    ["jean@exemple.fr", "reply@desk.example", "noreen@example.com", "bouncer@club.example", "norepl@x.example", "not-an-address", None],
)
def test_is_not_noreply(address: str | None) -> None:
    assert not is_noreply(address)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<abc@example.com>", "<abc@example.com>"),
        ("  <CAF=Ab+c/d@mail.gmail.com>  ", "<CAF=Ab+c/d@mail.gmail.com>"),
        ("abc@example.com", "<abc@example.com>"),
        ("<abc@example.com> (comment)", "<abc@example.com>"),
        ("<CaseKept@Example.COM>", "<CaseKept@Example.COM>"),
        ("<no-at-sign>", None),
        ("<>", None),
        ("", None),
        (None, None),
        ("<has space@example.com>", None),
        ("<@example.com>", None),
        ("<left@>", None),
        ("<" + "a" * 600 + "@example.com>", None),
    ],
)
def test_normalise_message_id(raw: str | None, expected: str | None) -> None:
    assert normalise_message_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<a@x> <b@y>\r\n <c@z>", ("<a@x>", "<b@y>", "<c@z>")),
        ("<a@x>,<b@y>", ("<a@x>", "<b@y>")),
        ("<a@x> <a@x> <b@y>", ("<a@x>", "<b@y>")),
        ("Your message of Mon, 1 Jan 2024 <orig@client.example>", ("<orig@client.example>",)),
        ("bare@one.example bare@two.example", ("<bare@one.example>", "<bare@two.example>")),
        ("<bad> <good@x>", ("<good@x>",)),
        ("", ()),
        (None, ()),
        ("no ids here", ()),
    ],
)
def test_parse_message_ids(raw: str | None, expected: tuple[str, ...]) -> None:
    assert parse_message_ids(raw) == expected


def test_parse_message_ids_keeps_root_and_latest_when_too_many() -> None:
    ids = parse_message_ids(" ".join(f"<m{i}@x>" for i in range(500)))
    assert len(ids) == MAX_MESSAGE_IDS
    assert ids[0] == "<m0@x>"
    assert ids[-1] == "<m499@x>"


@pytest.mark.parametrize("bare", [False, True])
def test_parse_message_ids_reads_a_long_value_at_both_ends(bare: bool) -> None:
    ids = [f"m{i}-{'x' * 400}@x" for i in range(2000)]  # about 800 kB
    value = " ".join(ids if bare else (f"<{i}>" for i in ids))
    found = parse_message_ids(value)
    assert found[0] == f"<{ids[0]}>" and found[-1] == f"<{ids[-1]}>"
    assert len(found) == MAX_MESSAGE_IDS
    assert all(f[1:-1] in ids for f in found)  # no id cut in two where the value was cut


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\u212aate@example.org", "\u212aate@example.org"),  # KELVIN SIGN is not "k"
        ("KATE@Example.ORG", "kate@example.org"),
        ("Jos\u00c9@example.org", "jos\u00c9@example.org"),  # only ASCII letters are lowered
        ("bob@\u00c9cole.fr", "bob@xn--cole-9oa.fr"),  # IDNA (UTS 46) for the domain
        ("bob@exa\u212aple.test", "bob@exakple.test"),  # the resolver's own mapping
        ("bob@-bad.test", None),
    ],
)
def test_normalise_address_lowers_ascii_letters_only(raw: str, expected: str | None) -> None:
    assert normalise_address(raw) == expected
    assert normalise_address("\u212aate@example.org") != normalise_address("kate@example.org")


def test_a_value_too_long_to_be_remembered_is_normalised_the_same_way() -> None:
    padded = " " * 600 + "Jean@Exemple.FR" + " " * 10
    assert normalise_address(padded) == "jean@exemple.fr" == normalise_address(padded.strip())
    assert normalise_address("x" * 600 + "@example.com") is None
