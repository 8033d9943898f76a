"""Benchmark ``process``: the worker alone, in this process, on mails already stored.

N corpus mails are stored with the real ``Intake`` (in batches of 32, as group commit does),
then ``Worker.process_until_idle()`` is timed: mails/s. One more run under pyinstrument says
where the time goes, by pipeline stage (``bench.profile``).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from bench import corpus
from bench.profile import breakdown, profiled
from bench.stats import median, spread
from bench.stores import Stores, make_app
from postdesk.mail.envelope import Envelope

BATCH = 32


def _prepared(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path):
    url = stores.clone(kind, seeds, "process")
    app = make_app(workdir / f"process-{kind}", url)
    intake = app.intake()
    mails = corpus.generate(size, count, tickets=seeds)
    for start in range(0, count, BATCH):
        intake.store_many([(m.raw, Envelope(m.sender, (corpus.DESK,), "smtp", "127.0.0.1"))
                           for m in mails[start:start + BATCH]])
    return url, app


def timed(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path) -> dict:
    url, app = _prepared(stores, kind, size, count, seeds, workdir)
    worker = app.worker()
    try:
        cpu, began = time.process_time(), time.perf_counter()
        done = worker.process_until_idle()
        wall = time.perf_counter() - began
        return {"processed": done, "per_s": done / wall, "ms_per_mail": wall * 1000 / done,
                "cpu_share": (time.process_time() - cpu) / wall}
    finally:
        app.db.dispose()
        stores.drop(url)


def profile(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path,
            html: Path | None = None) -> dict:
    url, app = _prepared(stores, kind, size, count, seeds, workdir)
    worker = app.worker()
    try:
        session, done = profiled(worker.process_until_idle)
        if html is not None:
            from pyinstrument.renderers import HTMLRenderer  # noqa: PLC0415

            html.write_text(HTMLRenderer().render(session), encoding="utf-8")
        return breakdown(session, done)
    finally:
        app.db.dispose()
        stores.drop(url)


def run(kinds: tuple[str, ...], size: str, count: int, runs: int, seeds: int, stores: Stores,
        workdir: Path, say=print, html_dir: Path | None = None) -> dict:
    found: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            result = timed(stores, kind, size, count, seeds, workdir)
            found[kind].append(result)
            say(f"  process {size} {kind}: {result['per_s']:.1f} mails/s")
    summary = [{"kind": kind, "size": size, "mails": count, "runs": len(items),
                "per_s": median(i["per_s"] for i in items),
                "per_s_range": spread(i["per_s"] for i in items),
                "ms_per_mail": median(i["ms_per_mail"] for i in items)}
               for kind, items in found.items()]
    profiles = {}
    if importlib.util.find_spec("pyinstrument") is None:
        say("  process profile skipped: pyinstrument is not installed (pip install -e '.[bench]')")
        kinds = ()
    for kind in kinds:
        html = html_dir / f"process-{kind}.html" if html_dir else None
        profiles[kind] = profile(stores, kind, size, count, seeds, workdir, html)
        say(f"  process {kind} profile: " + ", ".join(
            f"{s['stage']} {s['share']:.0%}" for s in profiles[kind]["stages"][:6]))
    return {"runs": found, "summary": summary, "profiles": profiles}
