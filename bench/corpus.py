"""A fixed, seeded corpus of customer mails for the benchmarks: same seed, same bytes.

Three size classes (``3k``, ``40k``, ``1m``) of French and English mails: new requests from
distinct customers, and replies that carry the ticket tag (``Re: [#7] ...``) and reference the
customer's earlier mail, written by that ticket's requester, so they thread onto the *seed
tickets* that ``seed_mails`` opens before a timed run. Some mails carry attachments; in the
larger classes the attachment makes most of the size. ``mixed`` is issue 24's scenario: 3 KB
mails, 70 % new requests and 30 % replies, half of them threaded by the subject's tag alone and
half by ``In-Reply-To`` alone, some with a small PDF. MIME is written by hand (fixed
boundaries, fixed dates, no uuid), so nothing depends on the clock or the global ``random``.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

DESK = "support@desk.test"
SIZES = {"3k": 3 * 1024, "40k": 40 * 1024, "1m": 1024 * 1024}
ATTACHMENT_SHARE = {"3k": 0.15, "40k": 0.6, "1m": 1.0}
REPLY_SHARE = 0.4
MIXED_REPLY_SHARE = 0.3
MIXED_PDF_SHARE = 0.15
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF_SIGNATURE = b"%PDF-1.4\n"
BASE_DATE = "Tue, 4 Mar 2025 09:{m:02d}:{s:02d} +0100"

SENTENCES = {
    "fr": (
        "Bonjour, je n'arrive plus à me connecter à mon espace client depuis ce matin.",
        "La page affiche une erreur 500 après la saisie du mot de passe.",
        "Ma commande n'est toujours pas arrivée alors que le suivi indique livrée.",
        "J'ai reçu deux factures pour le même mois, pouvez-vous vérifier ?",
        "L'application se ferme dès que j'ouvre l'onglet des paramètres.",
        "Pouvez-vous me rappeler au sujet du renouvellement de mon abonnement ?",
        "Je vous joins une capture d'écran du message d'erreur.",
        "Le problème persiste malgré la réinstallation et le vidage du cache.",
        "Merci d'avance pour votre aide, c'est assez urgent pour notre équipe.",
        "Nous utilisons la version 4.2 sur Windows 11 et sur macOS.",
    ),
    "en": (
        "Hello, I can no longer sign in to my customer account since this morning.",
        "The page shows an error 500 right after I type my password.",
        "My order has still not arrived although the tracking says delivered.",
        "I was billed twice for the same month, could you please check?",
        "The app closes as soon as I open the settings tab.",
        "Could someone call me back about renewing my subscription?",
        "I attach a screenshot of the error message.",
        "The problem is still there after reinstalling and clearing the cache.",
        "Thanks in advance for your help, this is rather urgent for our team.",
        "We run version 4.2 on Windows 11 and on macOS.",
    ),
}
SUBJECTS = {
    "fr": ("Impossible de me connecter", "Commande non reçue", "Facture en double",
           "L'application plante", "Renouvellement de l'abonnement"),
    "en": ("Cannot sign in", "Order not received", "Double invoice", "The app crashes",
           "Subscription renewal"),
}
NAMES = ("Céline Moré", "René François", "Zoë Martin", "Alice Smith", "Bob Jones", "Hélène Dupré")
QUOTE_HEADER = {"fr": "Le mar. 4 mars 2025 à 09:12, {name} a écrit :",
                "en": "On Tue, 4 Mar 2025 at 09:12, {name} wrote:"}


@dataclass(frozen=True)
class Mail:
    """One generated mail: its bytes and what it is (for the envelope and the report)."""

    raw: bytes
    sender: str
    kind: str  # "new" | "reply"
    locale: str
    attachment: bool
    message_id: str


def seed_mails(count: int, seed: int = 1) -> list[Mail]:
    """``count`` new requests that open tickets #1..#count when processed in this order."""
    rng = random.Random(f"seeds-{seed}")
    return [_new(rng, "3k", f"seed{i}", _seed_sender(i), attach=False) for i in range(1, count + 1)]


def generate(size: str, count: int, seed: int = 1, tickets: int = 50) -> list[Mail]:
    """``count`` mails of size class ``size``; replies name seed tickets #1..#tickets."""
    rng = random.Random(f"{size}-{seed}")
    mails = []
    for i in range(count):
        attach = rng.random() < ATTACHMENT_SHARE[size]
        if tickets and rng.random() < REPLY_SHARE:
            mails.append(_reply(rng, size, f"{size}-{seed}-{i}", rng.randint(1, tickets), attach))
        else:
            sender = f"customer{i}.{seed}@client{i % 97}.example"
            mails.append(_new(rng, size, f"{size}-{seed}-{i}", sender, attach))
    return mails


def mixed(count: int, seed: int = 1, tickets: int = 50) -> list[Mail]:
    """``count`` 3 KB mails: 70 % new requests from distinct customers, 30 % replies to seed
    tickets #1..#tickets by their requesters, alternately threaded by the tag in the subject
    (no ``In-Reply-To``) and by ``In-Reply-To``/``References`` (no tag); French and English;
    15 % carry a small PDF."""
    rng = random.Random(f"mixed-{seed}")
    replies = set(rng.sample(range(count), round(count * MIXED_REPLY_SHARE))) if tickets else set()
    mails = []
    for i in range(count):
        attach = rng.random() < MIXED_PDF_SHARE
        key = f"mixed-{seed}-{i}"
        if i in replies:
            by_tag = len([m for m in mails if m.kind == "reply"]) % 2 == 0
            mails.append(_reply(rng, "3k", key, rng.randint(1, tickets), attach,
                                by="tag" if by_tag else "in-reply-to", pdf=True))
        else:
            sender = f"customer{i}.{seed}@client{i % 97}.example"
            mails.append(_new(rng, "3k", key, sender, attach, pdf=True))
    return mails


def mails_of(size: str, count: int, seed: int = 1, tickets: int = 50) -> list[Mail]:
    """``generate`` for a size class, ``mixed`` for ``"mixed"``."""
    if size == "mixed":
        return mixed(count, seed, tickets)
    return generate(size, count, seed, tickets)


def _seed_sender(number: int) -> str:
    return f"requester{number}@client{number % 31}.example"


def _seed_subject(number: int) -> tuple[str, str]:
    rng = random.Random(f"seed-subject-{number}")
    locale = rng.choice(("fr", "en"))
    return locale, rng.choice(SUBJECTS[locale])


def _new(rng: random.Random, size: str, key: str, sender: str, attach: bool,
         pdf: bool = False) -> Mail:
    if key.startswith("seed"):
        locale, subject = _seed_subject(int(key[4:]))
    else:
        locale = rng.choice(("fr", "en"))
        subject = rng.choice(SUBJECTS[locale])
    return _mail(rng, size, key, sender, locale, subject, attach, kind="new", thread=(), pdf=pdf)


def _reply(rng: random.Random, size: str, key: str, ticket: int, attach: bool,
           by: str = "both", pdf: bool = False) -> Mail:
    """A reply to seed ticket ``ticket``, threaded by its tag and ``In-Reply-To`` (``both``),
    or by one of them (``tag``, ``in-reply-to``)."""
    locale, subject = _seed_subject(ticket)
    prefix = "RE" if locale == "en" else "TR" if rng.random() < 0.1 else "Re"
    tag = "" if by == "in-reply-to" else f"[#{ticket}] "
    thread = () if by == "tag" else (_message_id(f"seed{ticket}"),)
    return _mail(rng, size, key, _seed_sender(ticket), locale, f"{prefix}: {tag}{subject}",
                 attach, kind="reply", thread=thread, quote=True, pdf=pdf)


def _mail(rng, size, key, sender, locale, subject, attach, *, kind, thread, quote=None,
          pdf=False) -> Mail:
    name = rng.choice(NAMES)
    message_id = _message_id(key)
    headers = _headers(rng, name, sender, subject, message_id, thread)
    quoted = thread if quote is None else quote
    text = _text(rng, locale, SIZES[size], attach, quote=(name, locale) if quoted else None)
    if not attach:
        body = ("Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n" + text)
        return Mail(_bytes(headers + body), sender, kind, locale, False, message_id)
    boundary = f"=_bench_{key}"
    part = _attachment(rng, size, len(text), locale, pdf)
    body = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--{boundary}\r\n{part}"
            f"\r\n--{boundary}--\r\n")
    return Mail(_bytes(headers + body), sender, kind, locale, True, message_id)


def _message_id(key: str) -> str:
    return f"<bench.{key}@client.example>"


def _headers(rng, name, sender, subject, message_id, thread) -> str:
    encoded = base64.b64encode(name.encode()).decode()
    minute = rng.randrange(60)
    lines = [
        f"Received: from mx{rng.randrange(9)}.client.example ([203.0.113.{rng.randrange(1, 250)}])"
        "\r\n\tby mx.desk.test (Postfix) with ESMTPS id 4F1A2B3C4D; "
        + BASE_DATE.format(m=minute, s=7),
        f"From: =?utf-8?b?{encoded}?= <{sender}>",
        f"To: Support <{DESK}>",
        f"Subject: =?utf-8?b?{base64.b64encode(subject.encode()).decode()}?=",
        "Date: " + BASE_DATE.format(m=minute, s=rng.randrange(60)),
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if thread:
        lines += [f"In-Reply-To: {thread[-1]}", f"References: {' '.join(thread)}"]
    return "\r\n".join(lines) + "\r\n"


def _text(rng, locale: str, target: int, attach: bool, quote) -> str:
    budget = max(600, target // 12 if attach else target - 750)
    lines, used = [], 0
    while used < budget:
        line = " ".join(rng.choice(SENTENCES[locale]) for _ in range(rng.randint(1, 2)))
        lines.append(line)
        used += len(line.encode()) + 2
    text = "\r\n".join(lines) + "\r\n"
    if quote:
        name, locale = quote
        quoted = "\r\n".join("> " + rng.choice(SENTENCES[locale]) for _ in range(4))
        text += "\r\n" + QUOTE_HEADER[locale].format(name=name) + "\r\n" + quoted + "\r\n"
    return text


def _attachment(rng, size: str, text_bytes: int, locale: str, pdf: bool = False) -> str:
    raw_bytes = max(400, (SIZES[size] - 1100 - text_bytes) * 3 * 76 // (4 * 78))
    pdf = pdf or size == "1m"
    # A file's signature, as a real one has: the default policy checks it (check_content),
    # and a corpus of files it refuses would time the refusal instead of the usual path.
    signature = PDF_SIGNATURE if pdf else PNG_SIGNATURE
    data = base64.b64encode(signature + rng.randbytes(raw_bytes)).decode()
    wrapped = "\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))
    name = "capture-écran.png" if locale == "fr" else "screenshot.png"
    kind = "image/png" if not pdf else "application/pdf"
    name = name if not pdf else ("rapport.pdf" if locale == "fr" else "report.pdf")
    return (f'Content-Type: {kind}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{wrapped}')


def _bytes(text: str) -> bytes:
    return text.encode("utf-8")


def big_mail(size_bytes: int, key: str = "big", seed: int = 1) -> bytes:
    """One mail of about ``size_bytes`` (the memory benchmark): a short text and one attachment."""
    rng = random.Random(f"big-{key}-{seed}")
    headers = _headers(rng, "Alice Smith", f"{key}@client.example", "Big file",
                       _message_id(f"big-{key}-{seed}"), ())
    text = _text(rng, "en", 3000, True, None)
    raw_bytes = max(1, (size_bytes - 5000) * 3 * 76 // (4 * 78))  # base64 lines: 76 + CRLF
    data = base64.b64encode(rng.randbytes(raw_bytes)).decode()
    wrapped = "\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))
    boundary = f"=_bench_big_{key}"
    body = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--{boundary}\r\n"
            'Content-Type: application/zip; name="logs.zip"\r\nContent-Transfer-Encoding: base64'
            f'\r\nContent-Disposition: attachment; filename="logs.zip"\r\n\r\n{wrapped}\r\n'
            f"--{boundary}--\r\n")
    return _bytes(headers + body)
