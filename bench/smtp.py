"""Benchmark ``smtp``: SMTP ingest into a real ``postdesk serve``, against a do-nothing aiosmtpd.

For each size class and client concurrency, in every round: the client sends the corpus to
the do-nothing sink, then to postdesk's SMTP edge storing nothing (``bench.edge_sink``: what
the edge costs by itself, without the commit before the 250), then to ``postdesk serve`` on
SQLite, then on PostgreSQL (each on a fresh clone of the seeded template, warmed up by one
mail), then to ``serve --no-worker --no-sender`` (the edge alone).
Then, with ``Plan.paced``, the 3 KB corpus again at each fixed rate (mails per second offered,
not as fast as the server answers: ``bench.client``), to the do-nothing sink and to ``postdesk
serve`` on each store, with the worker: the latencies of a server that keeps up, where the
unpaced runs give those of a saturated machine; and, at the same pace, one durable commit alone
on each store (``COMMIT_ALONE``: a 3 KB row inserted and committed on the driver's connection,
as postdesk's engine opens it), what no store before the 250 can go under.
Measured: accepted mails/s (all 250s received), fully processed mails/s (every stored mail
processed — ticket written and acknowledgement queued in one commit — polled from the inbound
statuses every 0.1 s), p50/p99 DATA→250, the client's and the server's CPU use. Ratios are
taken to the sink of the same round, then their median. One more run per store is sampled
with py-spy (``bench.spy``), outside the medians.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bench import corpus, procs, spy
from bench.client import Blast, run_blast
from bench.stats import median, percentile, ratio, spread
from bench.stores import Stores, write_config
from postdesk.store.db import Database

FINAL = "('processed', 'discarded', 'quarantined')"
MEASURES = ("accepted_per_s", "processed_per_s", "p50_ms", "p99_ms")
ACCEPT_ONLY = ("--no-worker", "--no-sender")
NO_STORE = "postdesk edge, no store"  # bench.edge_sink: no target applies to it
COMMIT_ALONE = "a durable commit alone"  # paced: no target applies to it
_PROBE = "bench_commit_probe"


@dataclass(frozen=True)
class Plan:
    sizes: dict[str, int]  # size class -> mails per run
    concurrency: tuple[int, ...]
    kinds: tuple[str, ...]
    runs: int
    seeds: int
    accept_only: bool = True  # also ``serve --no-worker --no-sender``: the edge alone
    no_store: bool = True  # also ``bench.edge_sink``: postdesk's edge, storing nothing
    spy: bool = True  # one more run per store under py-spy (not in the medians)
    paced: tuple[int, ...] = ()  # also at these fixed rates (3k, 8 clients, with the worker)


class Progress(threading.Thread):
    """Polls how many stored mails reached a final status; notes when ``target`` was reached.

    It runs in the load client's process, on the cores the servers use: one connection is kept
    for all its polls (each poll's transaction ended, so that SQLite shows the newest rows).
    A new connection per poll, every 0.1 s, cost PostgreSQL about 0.25 ms of CPU per mail sent
    during a blast, on the cores the servers share (round AB in docs/performance.md)."""

    def __init__(self, url: str, target: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name="bench-progress")
        self.engine = sa.create_engine(url, poolclass=NullPool)
        self.target = target
        self.interval = interval
        self.done_at: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self._halt.is_set():
                seen = conn.exec_driver_sql(
                    f"SELECT count(*) FROM inbound WHERE status IN {FINAL}").scalar()
                conn.rollback()
                if seen >= self.target:
                    self.done_at = time.monotonic()
                    return
                self._halt.wait(self.interval)

    def finish(self, timeout: float) -> float | None:
        if self.ident is not None:  # started
            self.join(timeout)
            self._halt.set()
            self.join()
        return self.done_at

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT status, count(*) FROM inbound GROUP BY status")
            found = {f"inbound_{status}": n for status, n in rows}
            found["outbox"] = conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar()
        self.engine.dispose()
        return found


def _figures(blast: Blast, server_cpu: float) -> dict:
    return {"accepted_per_s": blast.accepted_per_second, "rate": blast.rate,
            "behind": blast.behind,
            "p50_ms": _ms(percentile(blast.latencies, 0.50)),
            "p99_ms": _ms(percentile(blast.latencies, 0.99)),
            "client_cpu": blast.client_cpu_share, "server_cpu": server_cpu / blast.wall,
            "sent": blast.sent, "refused": blast.refused, "errors": blast.errors[:3],
            "load": procs.load_average()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def sink_run(mails: list[corpus.Mail], concurrency: int, workdir: Path,
             module: str = "bench.sink", rate: float | None = None) -> dict:
    proc, port = procs.start_sink(workdir / f"{module.rpartition('.')[2]}.log", module)
    try:
        if module != "bench.sink":  # postdesk's imports and first session before the clock
            run_blast(port, corpus.generate("3k", 1, seed=99, tickets=0), 1)
        cpu = procs.cpu_seconds(proc.pid)
        blast = run_blast(port, mails, concurrency, rate)
        return _figures(blast, procs.cpu_seconds(proc.pid) - cpu)
    finally:
        procs.stop(proc)


def postdesk_run(stores: Stores, kind: str, mails: list[corpus.Mail], concurrency: int,
                 seeds: int, workdir: Path, flags: tuple[str, ...] = (),
                 spy_to: Path | None = None, rate: float | None = None) -> dict:
    """One run against ``postdesk serve FLAGS``; processed/s unless the worker is off."""
    url = stores.clone(kind, seeds, "smtp")
    folder = workdir / f"smtp-{kind}-{len(list(workdir.glob(f'smtp-{kind}-*')))}"
    proc, port = procs.start_serve(write_config(folder, url, port=procs.free_port()),
                                   folder / "serve.log", *flags)
    processing = "--no-worker" not in flags
    try:
        _warm_up(url, port, seeds, processing)
        progress = Progress(url, seeds + 1 + len(mails))
        with spy.recording(proc.pid, spy_to) if spy_to else contextlib.nullcontext():
            if processing:  # with the worker off nothing reaches a final status: no polls
                progress.start()
            cpu = procs.cpu_seconds(proc.pid)
            blast = run_blast(port, mails, concurrency, rate)
            figures = _figures(blast, procs.cpu_seconds(proc.pid) - cpu)
            done_at = progress.finish(timeout=60 + len(mails) / 2 if processing else 0)
        figures["processed_per_s"] = len(mails) / (done_at - blast.started) if done_at else None
        figures.update(progress.counts())
        return figures
    finally:
        procs.stop(proc)
        stores.drop(url)


def _warm_up(url: str, port: int, seeds: int, processing: bool) -> None:
    """One mail first, processed before the clock starts: imports, the language model,
    compiled templates and pooled connections are then what a long-running server has."""
    progress = Progress(url, seeds + 1, interval=0.05)
    if processing:
        progress.start()
    run_blast(port, corpus.generate("3k", 1, seed=99, tickets=0), 1)
    progress.finish(timeout=60 if processing else 0)
    progress.engine.dispose()


def _servers(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    servers = [(kind, f"postdesk-{kind}", ()) for kind in plan.kinds]
    if plan.accept_only:
        servers += [(kind, f"postdesk-{kind} accept-only", ACCEPT_ONLY) for kind in plan.kinds]
    return servers


def run(plan: Plan, stores: Stores, workdir: Path, say=print) -> dict:
    """Every round of the plan; returns the runs, their medians and the py-spy samples."""
    corpora = {size: corpus.generate(size, count, tickets=plan.seeds)
               for size, count in plan.sizes.items()}
    runs: list[dict] = []
    for round_no in range(plan.runs):
        for size, mails in corpora.items():
            for concurrency in plan.concurrency:
                key = {"size": size, "concurrency": concurrency, "round": round_no}
                base = sink_run(mails, concurrency, workdir)
                runs.append({**key, "server": "do-nothing", **base})
                say(f"  smtp {size} c={concurrency} do-nothing: {base['accepted_per_s']:.0f}/s")
                if plan.no_store:
                    figures = sink_run(mails, concurrency, workdir, "bench.edge_sink")
                    figures["ratios"] = _ratios(figures, base)
                    runs.append({**key, "server": NO_STORE, **figures})
                    say(f"  smtp {size} c={concurrency} {NO_STORE}: "
                        f"{figures['accepted_per_s']:.0f}/s")
                for kind, name, flags in _servers(plan):
                    figures = postdesk_run(stores, kind, mails, concurrency, plan.seeds,
                                           workdir, flags)
                    figures["ratios"] = _ratios(figures, base)
                    runs.append({**key, "server": name, **figures})
                    say(f"  smtp {size} c={concurrency} {name}: accepted "
                        f"{figures['accepted_per_s']:.0f}/s, processed "
                        f"{figures['processed_per_s'] or 0:.1f}/s")
        if "3k" in corpora:
            runs += _paced(plan, corpora["3k"], stores, workdir, round_no, say)
    found = {"plan": plan.__dict__, "runs": runs, "summary": summarise(runs)}
    if plan.spy and spy.executable():
        found["spy"] = _spied(plan, corpora, stores, workdir)
    return found


def _paced(plan: Plan, mails: list[corpus.Mail], stores: Stores, workdir: Path, round_no: int,
           say) -> list[dict]:
    """One round at each of the plan's fixed rates: the do-nothing sink, then ``serve`` with
    its worker on each store, 8 clients."""
    runs = []
    for rate in plan.paced:
        key = {"size": "3k", "concurrency": 8, "round": round_no}
        base = sink_run(mails, 8, workdir, rate=rate)
        runs.append({**key, "server": "do-nothing", **base})
        for kind in plan.kinds:
            alone = commit_alone(stores, kind, mails, rate)
            alone["ratios"] = _ratios(alone, base)
            runs.append({**key, "server": f"{COMMIT_ALONE}, {kind}", **alone})
            figures = postdesk_run(stores, kind, mails, 8, plan.seeds, workdir, rate=rate)
            figures["ratios"] = _ratios(figures, base)
            runs.append({**key, "server": f"postdesk-{kind}", **figures})
            say(f"  smtp 3k paced at {rate}/s postdesk-{kind}: p99 {figures['p99_ms']:.1f} ms "
                f"(do-nothing {base['p99_ms']:.1f}), {figures['behind']} mails behind the pace")
    return runs


def commit_alone(stores: Stores, kind: str, mails: list[corpus.Mail], rate: float) -> dict:
    """Each mail's bytes inserted into a table of their own and committed, one transaction
    per mail at ``rate`` mails per second, on one DBAPI connection of postdesk's own engine
    (SQLite in WAL with ``synchronous=FULL``, PostgreSQL with ``fsync`` and
    ``synchronous_commit`` as the server has them); the latency of each INSERT and COMMIT."""
    url = stores.clone(kind, 0, "commit")
    database = Database(url)
    latencies: list[float] = []
    started = time.monotonic()
    try:
        connection = database.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(f"CREATE TABLE {_PROBE} (id INTEGER PRIMARY KEY, raw BLOB)"
                           if database.is_sqlite else
                           f"CREATE TABLE {_PROBE} (id serial PRIMARY KEY, raw bytea)")
            connection.commit()
            insert = f"INSERT INTO {_PROBE} (raw) VALUES ({'?' if database.is_sqlite else '%s'})"
            for index, mail in enumerate(mails):
                time.sleep(max(0.0, started + index / rate - time.monotonic()))
                begun = time.perf_counter()
                if database.is_sqlite:  # its own transaction handling is off (store.db)
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(insert, (mail.raw,))
                connection.commit()
                latencies.append(time.perf_counter() - begun)
        finally:
            connection.close()
    finally:
        database.dispose()
        stores.drop(url)
    ended = time.monotonic()
    return {"accepted_per_s": len(mails) / (ended - started), "rate": rate, "behind": 0,
            "p50_ms": _ms(percentile(latencies, 0.50)), "p99_ms": _ms(percentile(latencies, 0.99)),
            "client_cpu": None, "server_cpu": None, "sent": len(mails), "refused": 0,
            "errors": [], "load": procs.load_average(), "processed_per_s": None}


def _spied(plan: Plan, corpora: dict, stores: Stores, workdir: Path) -> dict:
    """One more run per store, the first size and concurrency, sampled by py-spy."""
    size, mails = next(iter(corpora.items()))
    found = {}
    for kind in plan.kinds:
        raw = workdir / f"spy-{kind}.txt"
        figures = postdesk_run(stores, kind, mails, plan.concurrency[0], plan.seeds, workdir,
                               spy_to=raw)
        found[kind] = {"size": size, "concurrency": plan.concurrency[0],
                       "accepted_per_s": figures["accepted_per_s"],
                       "processed_per_s": figures["processed_per_s"], **spy.summarise(raw)}
    return found


def _ratios(figures: dict, base: dict) -> dict:
    return {"accepted": ratio(figures["accepted_per_s"], base["accepted_per_s"]),
            "processed": ratio(figures.get("processed_per_s"), base["accepted_per_s"]),
            "p99": ratio(figures["p99_ms"], base["p99_ms"])}


def summarise(runs: list[dict]) -> list[dict]:
    """Medians over rounds for each (size, concurrency, server), with min–max of the runs."""
    groups: dict[tuple, list[dict]] = {}
    for item in runs:
        groups.setdefault((item["size"], item["concurrency"], item.get("rate"), item["server"]),
                          []).append(item)
    rows = []
    for (size, concurrency, rate, server), items in groups.items():
        row = {"size": size, "concurrency": concurrency, "rate": rate, "server": server,
               "runs": len(items), "behind": max(i.get("behind", 0) for i in items)}
        for name in (*MEASURES, "client_cpu", "server_cpu"):
            row[name] = median(i.get(name) for i in items)
            row[f"{name}_range"] = spread(i.get(name) for i in items)
        for name in ("accepted", "processed", "p99"):
            row[f"ratio_{name}"] = median(i.get("ratios", {}).get(name) for i in items)
        row["quarantined"] = sum(i.get("inbound_quarantined", 0) for i in items)
        rows.append(row)
    return rows
