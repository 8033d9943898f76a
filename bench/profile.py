"""Where the worker's time goes: a pyinstrument session folded into pipeline stages and libraries.

Every sampled second is given to the innermost *stage* frame above it (``STAGES``: a frame of
postdesk named by file and function, e.g. ``templates/render.py:render`` is "render" even
inside the notify step), and to the *library* postdesk called into (the first frame below
postdesk's own code: sqlalchemy, mailparser, email, jinja2, …; "postdesk" when it is our code).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from pathlib import Path

CHECKS = "checks (dedupe, classify, flood, agent, history, survey)"
# (path suffix, function) -> stage; the innermost match wins.
STAGES: dict[tuple[str, str], str] = {
    ("gateway/worker.py", "process_batch"): "claim",
    ("gateway/worker.py", "_process_group"): "worker (batch loop)",
    ("gateway/worker.py", "_process_one"): "worker (other steps, pipeline)",
    ("gateway/worker.py", "_context"): "load",
    ("gateway/worker.py", "_prepare"): "prepare (read ahead, outside the transaction)",
    ("mail/parse.py", "parse"): "parse",
    ("gateway/worker.py", "_finish"): "finish (inbound row)",
    ("gateway/steps.py", "step_parse"): "parse",
    ("gateway/steps.py", "step_dedupe"): CHECKS,
    ("gateway/steps.py", "step_classify"): CHECKS,
    ("gateway/steps.py", "step_flood"): CHECKS,
    ("gateway/steps.py", "step_authenticate"): CHECKS,
    ("gateway/steps.py", "step_history"): CHECKS,
    ("gateway/steps.py", "step_survey"): CHECKS,
    ("gateway/steps.py", "step_thread"): "threading",
    ("gateway/steps.py", "step_record"): "record",
    ("gateway/steps.py", "step_notify"): "notify step (other)",
    ("notify/notifier.py", "notify"): "notifier (queries, outbox and message rows)",
    ("store/sweep_queries.py", "_claim"): "sweep: claim query",
    ("scheduler/batches.py", "_handle_one"): "sweep: per ticket (savepoint, checks)",
    ("mail/language.py", "detect_language"): "language detection",
    ("mail/quotes.py", "strip_quotes"): "quote stripping",
    ("notify/notifier.py", "_suppressed"): "notifier: rate-limit queries",
    ("templates/render.py", "render"): "render",
    ("notify/compose.py", "compose"): "compose",
    ("sqlalchemy/orm/session.py", "commit"): "commit",
    ("store/db.py", "do_begin"): "begin (write lock)",
}
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_TRANSPARENT = {"stdlib contextlib", "stdlib functools", "stdlib threading"}
_SAME = {"sqlalchemy": "SQL (sqlalchemy, sqlmodel, driver)",
         "sqlmodel": "SQL (sqlalchemy, sqlmodel, driver)"}


def profiled(work: Callable[[], int], interval: float = 0.0005):
    """Run ``work`` under pyinstrument; returns (session, what ``work`` returned)."""
    from pyinstrument import Profiler  # noqa: PLC0415 -- optional: pip install -e '.[bench]'

    profiler = Profiler(interval=interval)
    profiler.start()
    try:
        done = work()
    finally:
        profiler.stop()
    return profiler.last_session, done


def breakdown(session, mails: int) -> dict:
    """Seconds and shares by stage and by library, per mail too."""
    stages: dict[str, float] = {}
    libraries: dict[str, float] = {}
    sites: dict[str, float] = {}
    root = session.root_frame()
    if root is not None:
        _walk(root, "other", None, stages, libraries, sites, "")
    total = sum(stages.values()) or 1e-9
    return {"mails": mails, "seconds": total, "ms_per_mail": total * 1000 / max(mails, 1),
            "stages": _table(stages, total, mails, "stage"),
            "libraries": _table(libraries, total, mails, "library"),
            "sql_sites": _table(sites, total, mails, "caller")[:12]}


def _walk(frame, stage: str, library: str | None, stages: dict, libraries: dict, sites: dict,
          caller: str) -> None:
    """Fold one frame's own time into its stage and library; ``sites`` gets the time of each
    call from postdesk's code into SQL, by the postdesk function that made it."""
    path = (frame.file_path or "").replace("\\", "/")
    stage = STAGES.get(_key(path, frame.function), stage)
    if library is None:
        found = _library(path)
        library = None if found in _TRANSPARENT else found
        if library == _SAME["sqlalchemy"]:
            sites[caller] = sites.get(caller, 0.0) + frame.time
        elif library is None and "/postdesk/" in path:
            caller = f"{path.split('/postdesk/', 1)[1]}:{frame.function}"
    own = frame.time - sum(child.time for child in frame.children)
    if own > 0:
        stages[stage] = stages.get(stage, 0.0) + own
        lib = library or "postdesk"
        libraries[lib] = libraries.get(lib, 0.0) + own
    for child in frame.children:
        _walk(child, stage, library, stages, libraries, sites, caller)


def _key(path: str, function: str | None) -> tuple[str, str]:
    function = (function or "").rsplit(".", 1)[-1]
    for suffix, name in STAGES:
        if name == function and path.endswith(suffix):
            return suffix, name
    return "", ""


def _library(path: str) -> str | None:
    """The library a frame belongs to, or None for postdesk's own code and the bench."""
    if not path or "/postdesk/" in path or "/bench/" in path:
        return None
    if path.startswith("<sqlalchemy generated"):
        return _SAME["sqlalchemy"]
    if "site-packages/" in path:
        name = path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        return _SAME.get(name, name)
    try:
        relative = Path(path).resolve().relative_to(_STDLIB)
    except ValueError:
        return path.split("/", 1)[0] or path  # <built-in>, <sqlalchemy generated ...>
    return "stdlib " + relative.parts[0].removesuffix(".py")


def _table(seconds: dict[str, float], total: float, mails: int, name: str) -> list[dict]:
    ordered = sorted(seconds.items(), key=lambda item: -item[1])
    return [{name: key, "seconds": value, "share": value / total,
             "ms_per_mail": value * 1000 / max(mails, 1)} for key, value in ordered]
