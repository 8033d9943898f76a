"""Generators of hostile mails: each returns the raw bytes of one mail built to hurt a parser.

Deep MIME nesting, a 1 MB header, thousands of recipients, malformed encoded-words, bad
base64, NUL bytes and a 25 MB single line; each is a plausible attack or a real broken
mailer's output. ``NASTIES`` maps a name to its generator.
"""

from __future__ import annotations

import base64

HEAD = (b"From: Eve <eve@example.org>\r\nTo: support@desk.test\r\n"
        b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")


def deep_nesting(levels: int = 1000) -> bytes:
    parts = [HEAD, b"Subject: deep\r\nMessage-ID: <deep-1000@example.org>\r\n"]
    for i in range(levels):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\nthe bottom of the well\r\n")
    for i in reversed(range(levels)):
        parts.append(f"--b{i}--\r\n".encode())
    return b"".join(parts)


def megabyte_header() -> bytes:
    folded = b"\r\n ".join([b"x" * 70] * 14_500)  # ~1 MB, folded as RFC 5322 allows
    return (HEAD + b"Message-ID: <big-header@example.org>\r\nSubject: " + folded
            + b"\r\n\r\nbody\r\n")


def many_recipients(count: int = 5000) -> bytes:
    to = b",\r\n ".join(f"user{i}@example.net".encode() for i in range(count))
    return (b"From: Eve <eve@example.org>\r\nTo: support@desk.test,\r\n " + to
            + b"\r\nSubject: hello everyone\r\nMessage-ID: <many-rcpts@example.org>\r\n"
              b"\r\nhi all\r\n")


def bad_encoded_words() -> bytes:
    words = [b"=?utf-8?B?!!!notbase64?=", b"=?x-unknown-charset?Q?abc?=", b"=?utf-8?Q?unterminated",
             b"=?utf-8?B?" + base64.b64encode("é".encode())[:-2] + b"?=", b"=?=?=?==?",
             b"=?utf-8?Q?=0D=0ABcc:_x@evil.test?=", b"=?utf-16?B?2D3eAA==?="]
    subject = b" ".join(words * 300)
    return (b"From: =?utf-8?B?!!!?= =?bogus?Q?=FF?= <eve@example.org>\r\nTo: support@desk.test\r\n"
            b"Subject: " + subject + b"\r\nMessage-ID: <bad-words@example.org>\r\n"
            b"Content-Type: text/plain; charset=\"=?utf-8?Q?x?=\"\r\n\r\nbody\r\n")


def bad_base64() -> bytes:
    return (HEAD + b"Subject: bad base64\r\nMessage-ID: <bad-b64@example.org>\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"SGVsbG8g!!!d29y*bGQ=\r\n=====\r\nAAA\r\n--b\r\n"
            b'Content-Type: application/pdf; name="x.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + b"%%%%not base64 at all%%%%\r\n" * 2000 + b"--b--\r\n")


def nul_bytes() -> bytes:
    return (b"From: E\x00ve <eve@example.org>\r\nTo: support@desk.test\r\n"
            b"Subject: nul\x00 in \x00subject\r\nMessage-ID: <nul\x00@example.org>\r\n"
            b"X-Nul\x00Name: v\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            b"Content-Type: text/plain\r\n\r\nbody \x00 with \x00\x00 nul\r\n--b\r\n"
            b'Content-Type: text/plain; name="a\x00b.txt"\r\nContent-Disposition: attachment; '
            b'filename="a\x00b.txt"\r\n\r\nfile \x00\r\n--b--\r\n')


def long_line(size: int = 25_000_000) -> bytes:
    return (HEAD + b"Subject: one long line\r\nMessage-ID: <long-line@example.org>\r\n\r\n"
            + b"A" * size + b"\r\n")


NASTIES = {
    "deep MIME nesting (1,000 levels)": deep_nesting,
    "1 MB Subject header": megabyte_header,
    "5,000 recipients in To": many_recipients,
    "malformed encoded-words": bad_encoded_words,
    "bad base64": bad_base64,
    "NUL bytes": nul_bytes,
    "25 MB single line": long_line,
}
