"""The way of one stored mail through the worker: a tuple of named steps over one context.

Each step is a small function ``step(ctx)`` in :mod:`postdesk.gateway.steps`; the pipeline is
:data:`STEPS`, a tuple of names, so adding a step is one line. A step ends processing early by
raising a disposition (``Discard``, ``Quarantine``); any other exception is caught by the
worker, which quarantines the mail with the name of the step that failed (``ctx.step``).
Everything the steps write goes into the context's one transaction: a mail is recorded whole
or not at all.
"""

from __future__ import annotations

from postdesk.gateway import steps
from postdesk.gateway.context import Context

STEPS: tuple[str, ...] = (
    "parse", "dedupe", "classify", "authenticate", "flood", "history", "thread", "survey",
    "record", "notify",
)


def run(ctx: Context, names: tuple[str, ...] = STEPS) -> None:
    for name in names:
        ctx.step = name
        steps.REGISTRY[name](ctx)
        if ctx.done:
            return
