"""Give every attachment a file name that is safe to store and to offer for download.

The name in a mail is chosen by the sender: it may climb directories (``../../etc/passwd``),
hide control characters or right-to-left overrides, start with a dot, be thousands of
characters long, or be missing. ``safe_filename`` keeps only the last path component, cleans
it and bounds it, and invents ``attachment-N.ext`` from the content type when nothing is left.
"""

from __future__ import annotations

import mimetypes
import re

from postdesk.mail.headers import clean_header_value

MAX_FILENAME_LEN = 200
_TYPES = mimetypes.MimeTypes()  # built-in table only: the same answer on every machine
_OWN_EXTENSIONS = {
    "application/ms-tnef": ".dat",
    "application/vnd.ms-tnef": ".dat",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
}
_PATH_SEPARATORS = re.compile(r"[/\\]")
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}$")


def safe_filename(name: str | None, index: int, content_type: str) -> str:
    """A clean basename for attachment number ``index`` (1-based), never empty.

    Forwarded messages always end in ``.eml`` so they open in a mail client.
    """
    cleaned = _clean(name or "")
    if not cleaned:
        return f"attachment-{index}{extension_for(content_type)}"
    if content_type in ("message/rfc822", "message/global") and not cleaned.lower().endswith(".eml"):
        cleaned = _shorten(cleaned, MAX_FILENAME_LEN - 4) + ".eml"
    return _shorten(cleaned, MAX_FILENAME_LEN)


def extension_for(content_type: str) -> str:
    """The usual file extension of ``content_type`` (``.bin`` when unknown)."""
    known = _OWN_EXTENSIONS.get(content_type) or _TYPES.guess_extension(content_type, strict=False)
    return known or ".bin"


def _clean(name: str) -> str:
    """Last path component, printable characters only, no leading dots, no Windows-reserved marks."""
    one_line = "".join(ch for ch in clean_header_value(name, max_len=len(name)) if ch.isprintable())
    parts = [part for part in _PATH_SEPARATORS.split(one_line) if part.strip(" .")]
    base = parts[-1] if parts else ""
    base = _WINDOWS_FORBIDDEN.sub("_", base)
    return base.strip().lstrip(".").rstrip(" .").strip()


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters, keeping a short extension when it has one."""
    if len(name) <= limit:
        return name
    match = _EXTENSION.search(name)
    extension = match.group() if match else ""
    return name[: limit - len(extension)].rstrip(" .") + extension
