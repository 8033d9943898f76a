"""``python -m bench.fidelity``: how often postdesk finds the reply a customer wrote.

Each case of ``tests/corpus/replies`` is a body (``NAME.txt`` plain, ``NAME.html`` HTML-only)
and the text its author wrote (``NAME.expected.txt``). The body is sent through the real path
(a MIME mail, ``parse``, the desk's ``TextReadings``) and compared with the expectation, line
by line, blank lines and surrounding spaces aside. mail-parser-reply alone (every language it
knows, on the same parsed text; ``pip install -e '.[bench]'``) is scored beside it. Prints
figures; never passes or fails.

    python -m bench.fidelity            # the table
    python -m bench.fidelity --misses   # also each case postdesk gets wrong, with its answer

Then ``tests/corpus/bounces``: how many bounces are recognised with exactly the failed and
delayed recipients ``expected.json`` gives, how many are answered (must be 0), and how many
people's mails that look like bounces are taken for one (must be 0).

Then ``tests/corpus/subjects``: how many subjects postdesk reads as their sender wrote them,
beside the standard library's reading (``email`` with its default policy) and mail-parser's
of the same bytes, and how many new tickets get the subject without reply prefixes.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import importlib.util
import json
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import NamedTuple

import mailparser

from postdesk.mail.automatic import automatic_reason
from postdesk.mail.bounces import read_bounce
from postdesk.desk.arrival import TextReadings
from postdesk.mail.parse import ParsedMail, parse
from postdesk.mail.subject import strip_reply_prefixes

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "replies"
BOUNCES = CORPUS.parent / "bounces"
SUBJECTS = CORPUS.parent / "subjects" / "cases.json"
LIBRARY_LANGUAGES = ["en", "fr", "de", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "zh", "ko"]


class Case(NamedTuple):
    name: str
    body: str
    html: bool
    expected: str


def load_cases(folder: Path = CORPUS) -> list[Case]:
    """Every case of ``folder``, sorted by name."""
    cases = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".txt", ".html") and not path.name.endswith(".expected.txt"):
            expected = (folder / f"{path.stem}.expected.txt").read_text(encoding="utf-8")
            cases.append(Case(path.stem, path.read_text(encoding="utf-8"), path.suffix == ".html", expected))
    return cases


def as_mail(case: Case) -> ParsedMail:
    """The case's body as a customer's parsed mail (UTF-8, plain or HTML-only)."""
    message = EmailMessage()
    message["From"] = "client@example.com"
    message["To"] = "support@desk.test"
    message["Subject"] = "Re: [#1042] " + case.name
    message.set_content(case.body, subtype="html" if case.html else "plain", cte="8bit")
    return parse(message.as_bytes(policy=SMTP))


def postdesk_reply(mail: ParsedMail) -> str:
    """What the pipeline keeps of ``mail`` as its author's words."""
    return TextReadings().text_without_quotes(mail)


def library_reply(mail: ParsedMail) -> str:
    """mail-parser-reply's latest reply, alone, on the same text."""
    from mailparser_reply import EmailReplyParser  # noqa: PLC0415 - optional: the [bench] extra

    return EmailReplyParser(languages=LIBRARY_LANGUAGES).parse_reply(text=mail.text)


def same_text(found: str, expected: str) -> bool:
    """True when both hold the same lines, blank lines and surrounding spaces aside."""
    return _lines(found) == _lines(expected)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def score(reader, mails: list[tuple[Case, ParsedMail]], repeat: int = 5) -> tuple[int, float, list[tuple[str, str]]]:
    """Cases right, milliseconds per body (the best of ``repeat`` passes), and the misses."""
    right, misses = 0, []
    for case, mail in mails:
        found = reader(mail)
        if same_text(found, case.expected):
            right += 1
        else:
            misses.append((case.name, found))
    best = min(_seconds(reader, mails) for _ in range(repeat))
    return right, 1000 * best / max(len(mails), 1), misses


def _seconds(reader, mails: list[tuple[Case, ParsedMail]]) -> float:
    started = time.perf_counter()
    for _, mail in mails:
        reader(mail)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="print each case postdesk gets wrong")
    options = parser.parse_args(argv)
    mails = [(case, as_mail(case)) for case in load_cases()]
    total = len(mails)
    print(f"{'reader':<28} {'right':>9} {'ms/body':>8}  (best of 5 passes)")
    readers = [("postdesk", postdesk_reply)]
    if importlib.util.find_spec("mailparser_reply") is not None:
        readers.append(("mail-parser-reply alone", library_reply))
    for label, reader in readers:
        right, per_body, misses = score(reader, mails)
        print(f"{label:<28} {right:>4} / {total:<3} {per_body:>8.3f}")
        if options.misses and label == "postdesk":
            for name, found in misses:
                print(f"  miss {name}: {found[:300]!r}")
    print()
    for kind, count in bounce_counts().items():
        print(f"{'bounce corpus: ' + kind:<40} {count:>4}")
    print()
    subjects = load_subject_cases()
    for label, reader in (("postdesk", postdesk_subject), ("stdlib email (default policy)", stdlib_subject),
                          ("mail-parser", mailparser_subject)):
        misses = [case["name"] for case in subjects if not same_subject(reader(subject_mail(case)), case["expected"])]
        title = "subjects read right:" if label == "postdesk" else f"  the same cases, {label}:"
        print(f"{title:<51} {len(subjects) - len(misses):>4} of {len(subjects)}")
        if options.misses and label == "postdesk":
            for name in misses:
                print(f"  miss {name}")
    tickets = sum(strip_reply_prefixes(postdesk_subject(subject_mail(case))) == case.get("ticket", case["expected"])
                  for case in subjects)
    print(f"{'new ticket subjects right (prefixes dropped):':<51} {tickets:>4} of {len(subjects)}")


def bounce_counts(folder: Path = BOUNCES) -> dict[str, int]:
    """Counts per kind over the bounce corpus (the classify step's own readers)."""
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    counts = dict.fromkeys(("bounces", "recognised", "recipients right", "answered", "people",
                            "people taken for a bounce"), 0)
    for name, case in expected.items():
        raw = (folder / f"{name}.eml").read_bytes()
        mail = parse(raw)
        bounce = read_bounce(raw, mail)
        if case["bounce"]:
            counts["bounces"] += 1
            counts["recognised"] += bounce is not None
            counts["recipients right"] += bounce is not None and (
                list(bounce.permanent), list(bounce.temporary)) == (case["permanent"], case["temporary"])
            counts["answered"] += bounce is None and automatic_reason(mail) is None
        else:
            counts["people"] += 1
            counts["people taken for a bounce"] += bounce is not None
    return counts


def load_subject_cases(path: Path = SUBJECTS) -> list[dict]:
    """The subject corpus: each case a whole header (``header``, LF line ends, written in
    ``encoding``, UTF-8 when absent), the subject as read (``expected``) and, when it differs,
    the subject of a new ticket (``ticket``)."""
    return json.loads(path.read_text(encoding="utf-8"))


def subject_mail(case: dict) -> bytes:
    """The case as the bytes of a whole mail: its header with CRLF line ends, a short body."""
    header = case["header"].replace("\n", "\r\n").encode(case.get("encoding", "utf-8"))
    return header + b"\r\nHello.\r\n"


def postdesk_subject(raw: bytes) -> str:
    return parse(raw).subject


def stdlib_subject(raw: bytes) -> str:
    """The standard library's reading: ``email`` with its default (RFC 5322) policy."""
    try:
        return str(email.message_from_bytes(raw, policy=email.policy.default).get("subject") or "")
    except Exception:  # noqa: BLE001 - a reader that fails reads nothing
        return ""


def mailparser_subject(raw: bytes) -> str:
    try:
        subject = mailparser.parse_from_bytes(raw).subject or ""
        return subject[0] if isinstance(subject, list) else str(subject)  # a list when repeated
    except Exception:  # noqa: BLE001 - a reader that fails reads nothing
        return ""


def same_subject(found: str, expected: str) -> bool:
    """Equal once runs of blanks are one space and the ends are stripped."""
    return " ".join(found.split()) == " ".join(expected.split())


if __name__ == "__main__":
    main()
