"""Normalise mail addresses and Message-IDs so that equal things compare equal.

A help desk matches people by address (is this sender a participant?) and threads by
Message-ID (does this reply name a mail we know?). Both only work on one canonical form:
addresses are stripped, their ASCII letters lower-cased, their domain in IDNA form;
Message-IDs are ``<left@right>`` exactly as the sender wrote them inside the brackets.
Anything unusable becomes ``None`` rather than a half-valid value that would match by accident.

Every function here reads hostile text in linear time: long values are cut before any
pattern sees them, and no pattern has two unbounded quantifiers that can take the same
characters.
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna

MAX_ADDRESS_LEN = 254
MAX_MESSAGE_ID_LEN = 500
MAX_MESSAGE_IDS = 100
# An address is normalised several times per mail (its From by the parse, by the automatic-mail
# rules, by the notifier's no-reply check...): values up to this length are normalised once
# per process, at most 4,096 of them (about 2 MB).
MAX_REMEMBERED_LEN = 2 * MAX_ADDRESS_LEN
# A References value is read at most this far (its first id, the thread's root, and the
# latest ones): 100 ids of 500 characters, with their brackets and blanks.
MAX_REFERENCES_CHARS = MAX_MESSAGE_IDS * (MAX_MESSAGE_ID_LEN + 3)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_FORBIDDEN_IN_ADDRESS = re.compile(r"[\s<>()\[\],;:\"\\\x00-\x1f\x7f]")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # fullmatch: "$" would take a "\n"
_BRACKETED_ID = re.compile(r"<([^<>]{1,998})>")
_BARE_SEPARATORS = re.compile(r"[\s<>,;()\"]+")
_SEPARATOR_CHARACTERS = " \t\r\n<>,;()\""
_ID_FORBIDDEN = re.compile(r"[\s<>\"\\\x00-\x1f\x7f]")
_SEPARATORS = re.compile(r"[._+=]")
_NOREPLY_ANYWHERE = re.compile(r"(?:^|-)(?:no-?reply|do-?not-?reply|ne-?pas-?r[eé]pondre)(?:-|$)")
_SYSTEM_SENDER = re.compile(r"^(?:mailer-?daemon|postmaster|bounces?|no-?answer)(?:-|$)")


def normalise_address(s: str | None) -> str | None:
    """``s`` as ``local@domain``, or None when it is not exactly one address.

    The ASCII letters of the local part are lower-cased, although RFC 5321 lets a server treat
    it as case-sensitive: no mainstream mail provider does, customers type their address with
    any capitals, and a help desk that told ``Jean.Dupont@`` from ``jean.dupont@`` would open a
    second ticket or refuse a participant's reply. Other characters are kept as written:
    Unicode lower-casing merges distinct addresses (U+212A KELVIN SIGN becomes ``k``: a
    stranger writing it for the K of ``Kate@`` would be ``kate@``). The domain is ASCII lower
    case, or its IDNA form (UTS #46, the mapping every resolver applies).
    """
    if not s:
        return None
    return _remembered(s) if len(s) <= MAX_REMEMBERED_LEN else _normalise(s)


@lru_cache(maxsize=4096)
def _remembered(s: str) -> str | None:
    return _normalise(s)


def _normalise(s: str) -> str | None:
    candidate = s.strip().removeprefix("<").removesuffix(">").strip()
    if candidate.lower().startswith("mailto:"):
        candidate = candidate[7:]
    if candidate.count("@") != 1 or len(candidate) > MAX_ADDRESS_LEN * 2:
        return None
    local, domain = candidate.split("@")
    domain = _normalise_domain(domain)
    if not local or domain is None or _FORBIDDEN_IN_ADDRESS.search(local):
        return None
    address = f"{local.translate(_ASCII_LOWER)}@{domain}"
    return address if len(address) <= MAX_ADDRESS_LEN else None


def _normalise_domain(domain: str) -> str | None:
    """The domain in lower-case ASCII (IDNA for non-ASCII labels), or None when invalid."""
    domain = domain.strip().rstrip(".")
    if domain.isascii():
        domain = domain.translate(_ASCII_LOWER)
    else:
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    labels = domain.split(".")
    if len(labels) < 2 and domain != "localhost":
        return None
    return domain if all(_DOMAIN_LABEL.fullmatch(label) for label in labels) else None


def domain_of(addr: str | None) -> str | None:
    """The normalised domain of ``addr``, or None when it is not an address."""
    address = normalise_address(addr)
    return address.rsplit("@", 1)[1] if address else None


def is_noreply(addr: str | None) -> bool:
    """True for addresses nobody reads: no-reply, do-not-reply, MAILER-DAEMON, postmaster, bounces."""
    address = normalise_address(addr)
    if address is None:
        return False
    local = _SEPARATORS.sub("-", address.rsplit("@", 1)[0])
    return bool(_NOREPLY_ANYWHERE.search(local) or _SYSTEM_SENDER.match(local))


def normalise_message_id(s: str | None) -> str | None:
    """``s`` as ``<left@right>``, or None when it holds no usable Message-ID.

    The text inside the brackets is kept as written (Message-IDs are compared exactly); one
    without an ``@``, with blanks or control characters inside, or absurdly long is unusable.
    """
    if not s:
        return None
    text = s.strip()
    bracketed = _BRACKETED_ID.search(text)
    inner = bracketed.group(1).strip() if bracketed else text
    left, at, right = inner.rpartition("@")
    if not (left and at and right) or _ID_FORBIDDEN.search(inner):
        return None
    return f"<{inner}>" if len(inner) <= MAX_MESSAGE_ID_LEN else None


def parse_message_ids(header_value: str | None) -> tuple[str, ...]:
    """Every usable Message-ID in a References/In-Reply-To value, in order, without repeats.

    Bracketed ids are taken first; a value without brackets falls back to bare ``a@b`` tokens.
    At most ``MAX_MESSAGE_IDS`` are kept: the first (the thread's root) and the latest ones.
    A longer value is read only at its two ends (``MAX_REFERENCES_CHARS``).
    """
    if not header_value:
        return ()
    value = _both_ends(header_value)
    found = _BRACKETED_ID.findall(value) or [
        token for token in _BARE_SEPARATORS.split(value) if "@" in token]
    ids = dict.fromkeys(filter(None, map(normalise_message_id, found)))
    kept = tuple(ids)
    if len(kept) > MAX_MESSAGE_IDS:
        kept = kept[:1] + kept[-(MAX_MESSAGE_IDS - 1) :]
    return kept


def _both_ends(value: str) -> str:
    """``value``, or its first id and its last ``MAX_REFERENCES_CHARS`` characters when longer;
    an id cut in two at the start of the tail is left out."""
    if len(value) <= MAX_REFERENCES_CHARS:
        return value
    head = value[: MAX_MESSAGE_ID_LEN + 3]
    head = head[: max(head.rfind(separator) for separator in _SEPARATOR_CHARACTERS) + 1]
    tail = value[-MAX_REFERENCES_CHARS:]
    cut = _BARE_SEPARATORS.search(tail)
    tail = tail[cut.start():] if cut else ""
    return f"{head} {tail}"
