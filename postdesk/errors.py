"""Error types and dispositions: the exceptions that decide the fate of a mail or a command.

A disposition is raised by a pipeline step and caught in exactly one place (the worker), which
turns it into a stored status: ``Discard`` (processed, nothing to add), ``Quarantine`` (kept
with its reason for ``postdesk quarantine retry``); ``NotYet`` puts a mail back until earlier
mail is processed. ``TempFail`` is our own trouble at the
edge: the sender must retry (SMTP 451, ingest exit 75, IMAP leaves the mail unseen).
"""

from __future__ import annotations

from postdesk.lifecycle import InboundStatus


class PostdeskError(Exception):
    """Base of every error postdesk raises on purpose."""


class ConfigError(PostdeskError):
    """A configuration value is missing or wrong; the message names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        text = f"{key}: {problem}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class TempFail(PostdeskError):
    """We cannot take the mail right now (store down, disk full); the sender should retry."""


class Disposition(PostdeskError):
    """Raised by a pipeline step to end processing of one mail with a stored outcome."""

    status = InboundStatus.PROCESSED

    def __init__(self, reason: str, step: str = "") -> None:
        self.reason = reason
        self.step = step
        super().__init__(reason)


class Discard(Disposition):
    """Nothing to add (a duplicate, a bounce for a ticket we do not know); recorded, not lost."""

    status = InboundStatus.DISCARDED


class Quarantine(Disposition):
    """Keep the mail aside with its reason; an operator can re-run it."""

    status = InboundStatus.QUARANTINED


class NotYet(PostdeskError):
    """Raised by a pipeline step when a mail must wait for earlier mail that another worker is
    still processing (the mail it answers may be among them). Nothing is stored: the worker
    processes it again once those are done."""


class TemplateError(PostdeskError):
    """A template does not compile, or uses what its key does not allow."""
