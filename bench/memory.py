"""Benchmark ``memory``: peak resident memory of ``postdesk serve`` taking 25 MB mails.

A fresh server first takes one small mail and processes it (imports, compiled templates,
connection pools are then in its baseline), then receives one 25 MB mail — or ten at once,
over ten connections — and processes them. ``serve`` is one process or an SMTP process with
children (the worker's process, multiprocessing's resource tracker): every process of the tree
(``/proc/PID/task/*/children``) is measured on its own. After the warm-up each one's peak is
reset (``clear_refs``, where the kernel allows it) and its resident set noted; its figure is its
peak resident set (``VmHWM``) minus that. The sum of those peaks — an upper bound, since the
peaks need not coincide — divided by the bytes received is "how many times its size did the
mail cost at worst". The tree's resident sets are also summed every 50 ms: the largest sum seen
is a lower bound of the true peak.

The client sends as an MTA does: ``SIZE=`` at MAIL (aiosmtplib adds it when the server offers
SIZE), and after a ``4xx`` it waits a second and tries again (the edge's in-flight budget
answers ``452`` when it is full); the retries are counted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from aiosmtplib import SMTP, SMTPResponseException

from bench import corpus, procs
from bench.sink import HOST
from bench.smtp import Progress
from bench.stats import median, spread
from bench.stores import Stores, write_config

SIZE = 25_000_000
MiB = 1024 * 1024
RETRY_SECONDS = 1.0
MAX_TRIES = 120


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
        asyncio.run(send_all(port, warm))
        progress.finish(timeout=60)
        watch = TreeWatch(proc.pid)
        watch.start()
        began = time.monotonic()
        progress = Progress(url, seeds + 1 + len(mails), interval=0.05)
        progress.start()
        sent = asyncio.run(send_all(port, mails))
        done_at = progress.finish(timeout=600)
        watch.finish()
        received = sum(len(m.raw) for m in mails)
        return {"mails": len(mails), "bytes": received,
                **watch.figures(received, len(mails[0].raw)),
                "seconds": (done_at - began) if done_at else None, **sent, **progress.counts()}
    finally:
        procs.stop(proc)
        stores.drop(url)


async def send_all(port: int, mails: list[corpus.Mail]) -> dict:
    """Each mail over its own connection at once; a 4xx is retried after ``RETRY_SECONDS``."""
    result = {"sent": 0, "deferred": 0, "errors": []}
    await asyncio.gather(*(_send(port, mail, result) for mail in mails))
    result["errors"] = result["errors"][:3]
    return result


async def _send(port: int, mail: corpus.Mail, result: dict) -> None:
    client = SMTP(hostname=HOST, port=port, timeout=300, local_hostname="client.bench.test",
                  start_tls=False)
    await client.connect()
    try:
        for _ in range(MAX_TRIES):
            try:
                await client.sendmail(mail.sender, [corpus.DESK], mail.raw)
                result["sent"] += 1
                return
            except SMTPResponseException as error:
                if not 400 <= error.code < 500:
                    result["errors"].append(f"{error.code} {error.message}"[:200])
                    return
                result["deferred"] += 1
            await asyncio.sleep(RETRY_SECONDS)
        result["errors"].append(f"still deferred after {MAX_TRIES} tries")
    finally:
        client.close()


class TreeWatch(threading.Thread):
    """The peak of each process of a tree since ``start``, and the largest sum of their RSS."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True, name="bench-memory-tree")
        self.root = root
        self.interval = interval
        self.reset = all([_reset_peak(pid) for pid in process_tree(root)])
        self.before = {pid: _status_kib(pid, "VmRSS") for pid in process_tree(root)}
        self.peaks = dict(self.before)  # pid -> the last VmHWM seen, KiB
        self.roles = {pid: _role(pid, root) for pid in self.before}
        self.rss_sum_peak = sum(self.before.values())
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def finish(self) -> None:
        self._halt.set()
        self.join()
        self._sample()

    def _sample(self) -> None:
        rss = 0
        for pid in process_tree(self.root):
            self.roles.setdefault(pid, _role(pid, self.root))
            self.peaks[pid] = max(self.peaks.get(pid, 0), _status_kib(pid, "VmHWM"))
            rss += _status_kib(pid, "VmRSS")
        self.rss_sum_peak = max(self.rss_sum_peak, rss)

    def figures(self, received: int, one_mail: int) -> dict:
        """Per role (smtp: the serve process; worker: its other children; helper: trackers)."""
        rise = {pid: max(0, peak - self.before.get(pid, 0)) for pid, peak in self.peaks.items()}
        by_role = {role: sum(r for pid, r in rise.items() if self.roles[pid] == role) / 1024
                   for role in ("smtp", "worker", "helper")}
        total = sum(rise.values()) * 1024
        roles = [self.roles[pid] for pid in self.peaks]
        return {"rss_before_mib": sum(self.before.values()) / 1024,
                "peak_mib": sum(self.peaks.values()) / 1024, "increase_mib": total / MiB,
                "smtp_increase_mib": by_role["smtp"],
                "worker_increase_mib": by_role["worker"] if "worker" in roles else None,
                "helper_increase_mib": by_role["helper"],
                "sampled_increase_mib": (self.rss_sum_peak - sum(self.before.values())) / 1024,
                "processes": {role: roles.count(role) for role in sorted(set(roles))},
                "peaks_reset": self.reset, "times_size": total / received,
                "times_one_mail": total / one_mail}


def process_tree(root: int) -> list[int]:
    """``root`` and its living descendants."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text().split())
            except OSError:  # the thread or the process has just ended
                continue
    return found


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "smtp"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "helper"
    return "helper" if b"resource_tracker" in command or b"forkserver" in command else "worker"


def _status_kib(pid: int, key: str) -> int:
    try:
        return procs.memory_kib(pid, key)
    except (OSError, KeyError):  # gone (its last sample stays)
        return 0


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current resident set (Linux 4.0+: ``5`` > ``/proc/PID/clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


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
                say(f"  memory {kind} {name}: peaks +{result['increase_mib']:.0f} MiB "
                    f"(smtp +{result['smtp_increase_mib']:.0f}, worker "
                    f"+{result['worker_increase_mib'] or 0:.0f}; "
                    f"{result['times_size']:.1f}x the bytes received; "
                    f"{result['deferred']} deferred; {result['processes']})")
    return {"runs": found, "summary": summarise(found)}


def summarise(found: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for item in found:
        groups.setdefault((item["kind"], item["scenario"]), []).append(item)
    return [{"kind": kind, "scenario": name, "runs": len(items), "mails": items[0]["mails"],
             "mail_mib": items[0]["bytes"] / items[0]["mails"] / MiB,
             "processes": items[0]["processes"],
             **{key: median(i.get(key) for i in items) for key in _MEDIANS},
             "increase_range": spread(i["increase_mib"] for i in items),
             "quarantined": sum(i.get("inbound_quarantined", 0) for i in items)}
            for (kind, name), items in groups.items()]


_MEDIANS = ("rss_before_mib", "peak_mib", "increase_mib", "smtp_increase_mib",
            "worker_increase_mib", "helper_increase_mib", "sampled_increase_mib",
            "times_one_mail", "times_size", "seconds", "deferred")


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
