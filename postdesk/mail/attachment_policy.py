"""Which attachments a desk keeps (by default at most 5 files, 500 KB each, listed types).

Pure: given the parsed attachments and the policy, say for each file whether it is kept or
which rule it breaks (``count``, ``size``, ``type``). The type is checked from the name's
extension and, when ``check_content`` is on, from the bytes: binary formats must carry their
signature (the ``filetype`` library reads it), text formats must be text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import filetype

from postdesk.config import AttachmentSettings
from postdesk.mail.model import Attachment

TEXT_TYPES = frozenset({"csv", "tsv", "txt", "har", "json", "log", "md"})
SAME = {"jpeg": "jpg", "jpe": "jpg", "qt": "mov", "m4v": "mp4"}


@dataclass(frozen=True)
class Verdict:
    attachment: Attachment
    rule: str | None  # None: kept; else count | size | type

    @property
    def kept(self) -> bool:
        return self.rule is None


def judge(attachments: Sequence[Attachment], policy: AttachmentSettings) -> list[Verdict]:
    verdicts, kept = [], 0
    allowed = _allowed(tuple(policy.types))
    for attachment in attachments:
        rule = _rule(attachment, policy, allowed)
        if rule is None and kept >= policy.max_files:
            rule = "count"
        kept += rule is None
        verdicts.append(Verdict(attachment, rule))
    return verdicts


@lru_cache(maxsize=8)
def _allowed(types: tuple[str, ...]) -> frozenset[str]:
    """The extensions ``types`` allows, normalised (read once per configuration, not per mail)."""
    return frozenset(SAME.get(t.lower().lstrip("."), t.lower().lstrip(".")) for t in types)


def _rule(attachment: Attachment, policy: AttachmentSettings, allowed: frozenset[str]) -> str | None:
    if len(attachment.payload) > policy.max_bytes:
        return "size"
    extension = extension_of(attachment.filename)
    if extension not in allowed:
        return "type"
    if policy.check_content and not content_matches(extension, attachment.payload):
        return "type"
    return None


def extension_of(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return SAME.get(ext, ext)


def content_matches(extension: str, payload: bytes) -> bool:
    if extension in TEXT_TYPES:
        return _is_text(payload)
    guessed = filetype.guess(payload[:8192])
    if guessed is None:
        return False
    found = SAME.get(guessed.extension, guessed.extension)
    if extension in ("docx", "xlsx") and found == "zip":
        return True  # some Office writers are not recognised beyond the zip container
    if extension in ("doc", "xls") and found in ("doc", "xls", "msi"):
        return True  # the OLE container is shared by old Office formats
    return found == extension


def _is_text(payload: bytes) -> bool:
    sample = payload[:65536]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the sample's end
            try:
                sample.decode("cp1252")
            except UnicodeDecodeError:
                return False
    return True
