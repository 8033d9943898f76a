"""What ``postdesk.gateway.smtp`` takes from inside aiosmtpd, pinned to the code it was written
against. aiosmtpd has no hook while DATA is read, so ``_SmtpSession.smtp_DATA`` replaces
aiosmtpd's and reads ``_reader`` itself; ``push`` rewrites two texts aiosmtpd sends before any
hook runs. When aiosmtpd changes one of the methods below, its test fails: re-check what its
message says, then record the new digest (and raise the bound in pyproject.toml)."""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import aiosmtpd
import pytest
from aiosmtpd.smtp import SMTP

from postdesk.gateway import smtp

ROOT = Path(__file__).resolve().parents[2]

# method: (sha256 of its source in aiosmtpd 1.4.6, what postdesk relies on there)
PINNED = {
    "smtp_DATA": ("3a33f30d3fd6d02f39c7d78a08288bffea9170525b62e2161568041ae7e018df",
                  "_SmtpSession.smtp_DATA replaces it: bring over any new check (HELO, AUTH, "
                  "sequence, syntax), state change or limit; read_data must still read "
                  "self._reader up to the lone dot"),
    "smtp_MAIL": ("80dd938e7791acfb31bc6eef174b9c1af96d7bac54fe103198ec6ce3440e8043",
                  "the nested-MAIL text in REWRITES; SIZE= is still parsed (digits) and left "
                  "to handle_MAIL when data_size_limit is None"),
    "smtp_RCPT": ("a0d6605883c0e608df4fe4376f284be97e36a9b257d6401dd0116ec972c3e0ea",
                  "the need-MAIL text in REWRITES"),
    "smtp_EHLO": ("1d91592dd954c4cd87bf365fc57f0a16e36d9ff911cda1b2b253a4981618f19f",
                  "handle_EHLO gets the response list (first line the hostname) and must set "
                  "session.host_name"),
    "push": ("15f4f1de5e30c337e3df529f7b5794d3dd071f6c32ddf53bf21248c6e2277c48",
             "_SmtpSession.push wraps it: a str status is still one reply (CRLF added)"),
    "_set_post_data_state": ("1dc8a8abca2a81644a605b8ebf427fc7472eeadf5149dd3cf2591fa86b2256e9",
                             "smtp_DATA calls it after each mail to start a new envelope"),
    "connection_made": ("77a45df5065bba343a040b6f6c88de8907b40c80bc03727e7f18ede20d19f4bf",
                        "it makes self._reader with limit=line_length_limit, and STARTTLS "
                        "calls it again on the same connection (_SmtpSession counts it once)"),
    "connection_lost": ("d3bf6349bc3c25c1da222896000a041fae278d177036ffaea0cabc4cb9bc655b",
                        "_SmtpSession.connection_lost gives the connection back, then calls it"),
}


@pytest.mark.parametrize("method", PINNED)
def test_aiosmtpd_code_postdesk_relies_on_is_unchanged(method: str) -> None:
    digest, relies_on = PINNED[method]
    source = inspect.getsource(getattr(SMTP, method))
    assert hashlib.sha256(source.encode()).hexdigest() == digest, (
        f"aiosmtpd {aiosmtpd.__version__} changed SMTP.{method}: re-check that {relies_on} "
        "(postdesk/gateway/smtp.py), then record the new digest here")


@pytest.mark.parametrize("text", smtp.REWRITES)
def test_rewritten_texts_are_still_sent_by_aiosmtpd(text: str) -> None:
    sources = inspect.getsource(SMTP.smtp_MAIL) + inspect.getsource(SMTP.smtp_RCPT)
    assert f'"{text}"' in sources or f"'{text}'" in sources, text


def test_the_pin_is_an_upper_bound_in_pyproject() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    bound = re.search(r'"aiosmtpd>=([\d.]+),<([\d.]+)"', pyproject)
    assert bound, "aiosmtpd needs an upper bound: smtp.py replaces its DATA"
    installed = tuple(int(n) for n in aiosmtpd.__version__.split(".")[:2])
    assert installed < tuple(int(n) for n in bound.group(2).split("."))
