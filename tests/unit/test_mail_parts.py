"""parts.payload_of decodes a flawless base64 leaf itself: the email package's bytes and defects."""

from __future__ import annotations

import base64
from email.message import Message

from hypothesis import given, settings
from hypothesis import strategies as st

from postdesk.mail.parts import Extracted, payload_of


def leaf(text: str, encoding: str) -> Message:
    part = Message()
    part["Content-Type"] = "application/octet-stream"
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(text)
    return part


def wrapped(data: bytes, width: int, end: str) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\r\n".join(text[i : i + width] for i in range(0, len(text), width)) + end


ENCODED = st.builds(wrapped, st.binary(max_size=300), st.sampled_from([4, 7, 76]),
                    st.sampled_from(["", "\r\n", "\n", "\r", "=\r\n", "\r\n=="]))
NEAR_MISSES = st.text(alphabet="AB+/=\r\n! \t\udce9", max_size=24)  # what a parser leaves


@settings(max_examples=400, deadline=None)
@given(st.one_of(ENCODED, NEAR_MISSES),
       st.sampled_from(["base64", "BASE64", "base64 ", "quoted-printable", "8bit"]))
def test_payload_of_gives_what_the_email_package_gives(text: str, encoding: str) -> None:
    ours, stdlib = leaf(text, encoding), leaf(text, encoding)
    assert payload_of(ours, Extracted()) == stdlib.get_payload(decode=True)
    assert [type(d) for d in ours.defects] == [type(d) for d in stdlib.defects]
