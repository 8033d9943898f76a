"""``python -m bench``: run postdesk's benchmarks, print a table, optionally write JSON.

    python -m bench                     # everything, full size (about 50 minutes on 2 cores)
    python -m bench --quick             # a short run of everything (under 2 minutes)
    python -m bench --only smtp         # one benchmark (smtp, process, memory, sweep, outbound,
                                        # peer)
    python -m bench --json out.json     # also write every run and the medians
    python -m bench --report out.json   # print the tables of a saved run again
    python -m bench --only smtp --db postgres --smtp-sizes 3k   # issue 24's p99 figure

PostgreSQL is taken from ``POSTDESK_BENCH_PG_URL`` (default: postgres@127.0.0.1:5432); every
database made is dropped at the end. Benchmarks print figures; they never pass or fail.
``peer`` (django-helpdesk on the same corpus) needs the interpreter of a separate venv holding
django-helpdesk (the ``peer`` extra): ``--peer-python`` or ``POSTDESK_BENCH_PEER_PYTHON``;
without it, it is skipped (about 11 minutes in the full run with it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import memory, outbound, peer, process, report, smtp, sweep
from bench.procs import load_average
from bench.stores import KINDS, Stores, versions

NAMES = ("smtp", "process", "memory", "sweep", "outbound", "peer")
SEEDS = 50
PLANS = {
    "full": {"smtp": {"3k": 600, "40k": 200, "1m": 20}, "process": 500, "mixed": 1000,
             "history": 200_000,
             "runs": 3, "memory": {"one": 1, "ten": 10}, "sweep": ((100_000, 1_000_000), 10_000),
             "outbound": 300, "profiles": True, "workers": (1, 2), "paced": (100,)},
    "quick": {"smtp": {"3k": 150}, "process": 100, "mixed": 200, "history": 20_000, "runs": 1,
              "memory": {"one": 1}, "sweep": ((100_000,), 1_000), "outbound": 100,
              "profiles": False, "workers": (1, 2), "paced": ()},
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--quick", action="store_true", help="a short run (smaller corpora, 1 run)")
    parser.add_argument("--only", choices=NAMES, action="append", help="run only this (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="write every run and the medians to FILE")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument("--db", default=",".join(KINDS), help="stores: sqlite,postgres")
    parser.add_argument("--smtp-sizes", metavar="SIZES",
                        help="smtp: only these size classes, e.g. 3k (default: the plan's, "
                             "3k,40k,1m in the full run)")
    parser.add_argument("--smtp-paced", metavar="RATES",
                        help="smtp: also send the 3k corpus at these fixed rates, mails/s "
                             "offered (e.g. 50,150; default: the plan's, 100 in the full run; "
                             "0 for none)")
    parser.add_argument("--profile-html", metavar="DIR", help="save pyinstrument HTML profiles")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, files)")
    parser.add_argument("--report", metavar="FILE", help="print the tables of a saved --json file")
    parser.add_argument("--peer-python", metavar="PYTHON",
                        help=f"the peer venv's interpreter (default ${peer.PYTHON_ENV})")
    return parser.parse_args(argv)


def smtp_sizes(planned: dict[str, int], chosen: str) -> dict[str, int]:
    """The plan's smtp size classes (mails per run) restricted to ``chosen`` ("3k,40k")."""
    names = [name for name in chosen.split(",") if name]
    unknown = [name for name in names if name not in PLANS["full"]["smtp"]]
    if unknown or not names:
        raise SystemExit(f"--smtp-sizes: unknown size class {', '.join(unknown) or chosen!r} "
                         f"(known: {', '.join(PLANS['full']['smtp'])})")
    return {name: planned.get(name, PLANS["full"]["smtp"][name]) for name in names}


def paced_rates(chosen: str) -> tuple[int, ...]:
    """``--smtp-paced``: rates in mails per second ("50,150"); "0" for none."""
    try:
        rates = tuple(int(rate) for rate in chosen.split(",") if rate.strip())
    except ValueError:
        raise SystemExit(f"--smtp-paced: {chosen!r} is not a list of whole mails per second, "
                         "e.g. 50,150") from None
    if any(rate < 0 for rate in rates):
        raise SystemExit(f"--smtp-paced: {chosen!r}: a rate is at least 1 mail per second")
    return tuple(rate for rate in rates if rate)


def machine_info(mode: str) -> dict:
    found = versions()
    return {"nproc": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "sqlite": found["sqlite"], "postgres": found.get("postgres", "?"),
            "postgres_settings": found.get("postgres_settings", ""), "mode": mode,
            "load_at_start": load_average(), "code": code_version(),
            "started": datetime.now(UTC).isoformat(timespec="seconds")}


def code_version() -> str:
    """The commit measured, and whether postdesk/ had changes not committed yet."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=30)
        return result.stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "postdesk")
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' + uncommitted changes in postdesk/' if dirty else ''}" if head else "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def run_one(name: str, plan: dict, runs: int, kinds: tuple[str, ...], stores: Stores,
            workdir: Path, html: Path | None, peer_python: str | None = None) -> dict:
    if name == "smtp":
        return smtp.run(smtp.Plan(plan["smtp"], (8, 32), kinds, runs, SEEDS,
                                  spy=plan["profiles"], paced=plan["paced"]), stores, workdir)
    if name == "process":
        found = process.run(kinds, "3k", plan["process"], runs, SEEDS, stores, workdir,
                            html_dir=html, history=plan["history"], workers=plan["workers"])
        # Issue 24's corpus: new requests, replies by tag and by In-Reply-To, some PDFs.
        mixed = process.run(kinds, "mixed", plan["mixed"], runs, SEEDS, stores, workdir,
                            workers=plan["workers"], profile_too=False)
        return {**found, "runs": found["runs"] + mixed["runs"],
                "summary": found["summary"] + mixed["summary"]}
    if name == "memory":
        found = memory.run(kinds, plan["memory"], runs, 5, stores, workdir)
        found["steps"] = memory.step_peaks(stores, kinds[0], 5, workdir)
        return found
    if name == "sweep":
        sizes, due = plan["sweep"]
        return sweep.run(kinds, sizes, due, runs, stores, workdir, profile=plan["profiles"])
    if name == "peer":
        if "sqlite" not in kinds:
            print("  peer skipped: it runs on SQLite only (--db sqlite)")
            return {"skipped": "not on SQLite", "runs": [], "summary": []}
        environ = {**os.environ, peer.PYTHON_ENV: peer_python} if peer_python else None
        return peer.run(plan["mixed"], runs, SEEDS, stores, workdir, environ=environ)
    return outbound.run(kinds, plan["outbound"], runs, stores, workdir)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the databases are dropped
    if args.report:
        print(report.render(json.loads(Path(args.report).read_text())), end="")
        return 0
    mode = "quick" if args.quick else "full"
    plan, runs = PLANS[mode], args.runs or PLANS[mode]["runs"]
    if args.smtp_sizes:
        plan = {**plan, "smtp": smtp_sizes(plan["smtp"], args.smtp_sizes)}
    if args.smtp_paced is not None:
        plan = {**plan, "paced": paced_rates(args.smtp_paced)}
    kinds = tuple(k for k in args.db.split(",") if k)
    workdir = Path(tempfile.mkdtemp(prefix="postdesk-bench-"))
    html = Path(args.profile_html) if args.profile_html else None
    if html:
        html.mkdir(parents=True, exist_ok=True)
    results = {"machine": {**machine_info(mode), "runs": runs}, "benchmarks": {}}
    stores = Stores(workdir)
    try:
        for name in args.only or NAMES:
            began = time.monotonic()
            print(f"{name} …", flush=True)
            results["benchmarks"][name] = run_one(name, plan, runs, kinds, stores, workdir, html,
                                                  args.peer_python)
            results["benchmarks"][name]["seconds"] = time.monotonic() - began
            _save(args.json, results)
    finally:
        stores.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder kept: {workdir}", file=sys.stderr)
    results["machine"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    _save(args.json, results)
    print(report.render(results), end="")
    return 0


def _save(path: str | None, results: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
