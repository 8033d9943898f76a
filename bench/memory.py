"""Benchmark ``memory``: peak resident memory of ``postdesk serve`` taking 25 MB mails.

A fresh server first takes one small mail and processes it (imports, compiled templates,
connection pools are then in its baseline), then receives one 25 MB mail — or ten at once,
over ten connections — and processes them. The figure is the peak resident set
(``VmHWM`` in ``/proc/PID/status``) minus the resident set before the big mails, divided by
the bytes received: "how many times its size did the mail cost at worst".
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import corpus, procs
from bench.client import run_blast
from bench.smtp import Progress
from bench.stats import median, spread
from bench.stores import Stores, write_config

SIZE = 25_000_000
MiB = 1024 * 1024


def big_mails(count: int, size: int = SIZE) -> list[corpus.Mail]:
    return [corpus.Mail(corpus.big_mail(size, key=f"m{i}"), f"m{i}@client.example", "new", "en",
                        True, f"<bench.big-m{i}-1@client.example>") for i in range(count)]


def one_run(stores: Stores, kind: str, mails: list[corpus.Mail], seeds: int, workdir: Path) -> dict:
    url = stores.clone(kind, seeds, "memory")
    folder = workdir / f"memory-{kind}-{len(list(workdir.glob(f'memory-{kind}-*')))}"
    proc, port = procs.start_serve(write_config(folder, url, port=procs.free_port()),
                                   folder / "serve.log")
    try:
        warm = corpus.generate("3k", 1, seed=99, tickets=0)
        progress = Progress(url, seeds + 1, interval=0.05)
        progress.start()
        run_blast(port, warm, 1)
        progress.finish(timeout=60)
        before = procs.memory_kib(proc.pid, "VmRSS")
        began = time.monotonic()
        progress = Progress(url, seeds + 1 + len(mails), interval=0.05)
        progress.start()
        blast = run_blast(port, mails, len(mails))
        done_at = progress.finish(timeout=600)
        peak = procs.memory_kib(proc.pid, "VmHWM")
        received = sum(len(m.raw) for m in mails)
        counts = progress.counts()
        return {"mails": len(mails), "bytes": received, "rss_before_mib": before / 1024,
                "peak_mib": peak / 1024, "increase_mib": (peak - before) / 1024,
                "times_size": (peak - before) * 1024 / received,
                "times_one_mail": (peak - before) * 1024 / len(mails[0].raw),
                "seconds": (done_at - began) if done_at else None, "sent": blast.sent,
                "errors": blast.errors[:3], **counts}
    finally:
        procs.stop(proc)
        stores.drop(url)


def run(kinds: tuple[str, ...], scenarios: dict[str, int], runs: int, seeds: int,
        stores: Stores, workdir: Path, say=print) -> dict:
    mails = big_mails(max(scenarios.values()))
    found: list[dict] = []
    for _ in range(runs):
        for kind in kinds:
            for name, count in scenarios.items():
                result = {"kind": kind, "scenario": name,
                          **one_run(stores, kind, mails[:count], seeds, workdir)}
                found.append(result)
                say(f"  memory {kind} {name}: peak +{result['increase_mib']:.0f} MiB "
                    f"({result['times_size']:.1f}x the bytes received)")
    return {"runs": found, "summary": summarise(found)}


def summarise(found: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for item in found:
        groups.setdefault((item["kind"], item["scenario"]), []).append(item)
    return [{"kind": kind, "scenario": name, "runs": len(items), "mails": items[0]["mails"],
             "mail_mib": items[0]["bytes"] / items[0]["mails"] / MiB,
             "rss_before_mib": median(i["rss_before_mib"] for i in items),
             "peak_mib": median(i["peak_mib"] for i in items),
             "increase_mib": median(i["increase_mib"] for i in items),
             "increase_range": spread(i["increase_mib"] for i in items),
             "times_one_mail": median(i["times_one_mail"] for i in items),
             "times_size": median(i["times_size"] for i in items),
             "seconds": median(i["seconds"] for i in items),
             "quarantined": sum(i.get("inbound_quarantined", 0) for i in items)}
            for (kind, name), items in groups.items()]


def step_peaks(stores: Stores, kind: str, seeds: int, workdir: Path) -> dict:
    """In this process, under tracemalloc: the peak of Python allocations in each pipeline step
    (and in the whole ``process``) for one 25 MB mail stored with the real ``Intake``."""
    import tracemalloc  # noqa: PLC0415

    from bench.stores import make_app  # noqa: PLC0415
    from postdesk.gateway import steps  # noqa: PLC0415
    from postdesk.mail.envelope import Envelope  # noqa: PLC0415

    url = stores.clone(kind, seeds, "memsteps")
    app = make_app(workdir / f"memsteps-{kind}", url)
    [mail] = big_mails(1)
    peaks: dict[str, float] = {}
    highest = [0]  # the highest absolute peak seen (a step's reset_peak hides the outer one)
    original = dict(steps.REGISTRY)

    def measured(name, function):
        def step(ctx):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            try:
                return function(ctx)
            finally:
                highest[0] = max(highest[0], tracemalloc.get_traced_memory()[1])
                peaks[name] = (tracemalloc.get_traced_memory()[1] - before) / MiB
        return step

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        app.intake().store(mail.raw, Envelope(mail.sender, (corpus.DESK,), "smtp", "127.0.0.1"))
        peaks["intake.store"] = tracemalloc.get_traced_memory()[1] / MiB
        steps.REGISTRY.update({n: measured(n, f) for n, f in original.items()})
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        app.worker().process_until_idle()
        top = max(highest[0], tracemalloc.get_traced_memory()[1])
        peaks["worker.process (whole)"] = (top - before) / MiB
    finally:
        steps.REGISTRY.update(original)
        tracemalloc.stop()
        app.db.dispose()
        stores.drop(url)
    return {"mail_mib": len(mail.raw) / MiB, "peaks_mib": peaks}
