"""``python -m bench.compare``: the worker's cost per mail, two source trees side by side.

    git archive main | tar -x -C /tmp/main         # a baseline snapshot (any commit)
    python -m bench.compare /tmp/main . --store sqlite --pairs 10
    python -m bench.compare /tmp/main . --store postgres --instructions

Each tree runs in its own process, started from that tree (``PYTHONPATH``), on its own copy of
the same seeded store holding the same stored 3 KB corpus mails, warmed up as a running worker
is (``bench.process._prepared``, ``Worker.warm_up``); only the processing of the stored mails
is counted.

- CPU (default): a pair of processes, one per tree, started at the same moment, then run batch
  by batch in turn (``Worker.process_batch``), the one to go first alternating, so that both
  see the same moments of a noisy machine; each prints the CPU time of its batches
  (``time.process_time``). A pair gives the ratio B ÷ A of CPU per mail; ``--pairs`` pairs
  give their median. Run a tree against itself to see the noise of the moment.
- Instructions (``--instructions``): each tree's process under valgrind's callgrind, counting
  only ``process_until_idle()`` (a small C shim's client requests switch the counting on and
  off); instructions per mail do not depend on the load, unlike CPU time, but weigh cheap and
  costly instructions alike, and miss the system calls' time.

Figures only: nothing passes or fails. PostgreSQL comes from ``POSTDESK_BENCH_PG_URL`` as for
``python -m bench``; each process drops the databases it made.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEEDS = 50
_SHIM = r"""
#include <valgrind/callgrind.h>
void counting_on(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void counting_off(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("worker"); }
"""


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("baseline", type=Path, help="tree A (a snapshot of the baseline commit)")
    parser.add_argument("candidate", type=Path, help="tree B")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--mails", type=int, help="mails per process (default 500; 300 under "
                        "callgrind)")
    parser.add_argument("--pairs", type=int, default=6, help="pairs of processes (CPU)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of timing CPU")
    parser.add_argument("--runs", type=int, default=1,
                        help="callgrind runs per tree, alternated (instructions)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    trees = [tree.resolve() for tree in (args.baseline, args.candidate)]
    for tree in trees:
        if not (tree / "postdesk").is_dir() or not (tree / "bench" / "process.py").is_file():
            sys.exit(f"{tree}: not a postdesk source tree (no postdesk/ or bench/process.py)")
    with tempfile.TemporaryDirectory(prefix="postdesk-compare-") as folder:
        if args.instructions:
            return instructions(trees, args.store, args.mails or 300, args.runs, Path(folder))
        return cpu_pairs(trees, args.store, args.mails or 500, args.pairs, Path(folder))


def _child(tree: Path, mode: str, store: str, mails: int, folder: Path,
           prefix: tuple[str, ...] = (), shim: Path | None = None) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    if shim is not None:
        env["POSTDESK_COUNTING_SHIM"] = str(shim)
    # -P: the tree's ``bench`` package, not this file's folder, is found first.
    command = [*prefix, sys.executable, "-P", __file__, "--child", mode, store, str(mails),
               str(folder)]
    with open(folder / "stderr.log", "wb") as log:  # the desk's log; the child keeps it open
        child = subprocess.Popen(command, env=env, cwd=folder, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
    child.log = folder / "stderr.log"
    return child


def _answer(child: subprocess.Popen) -> str:
    line = child.stdout.readline()
    if not line:
        said = child.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        raise RuntimeError(f"a measuring process stopped (exit code {child.wait()}): "
                           + "\n".join(said[-15:]))
    return line.strip()


def cpu_pairs(trees: list[Path], store: str, mails: int, pairs: int, folder: Path) -> int:
    from bench.procs import load_average  # noqa: PLC0415 - this tree's, in the parent only
    from bench.stats import median  # noqa: PLC0415

    print(f"CPU per mail, {mails} mails of 3 KB per process, {store}; A = {trees[0]}, "
          f"B = {trees[1]}")
    ratios = []
    for number in range(pairs):
        load = load_average()
        children = [_child(tree, "cpu", store, mails, folder / f"pair{number}-{side}")
                    for side, tree in zip("AB", trees, strict=True)]
        try:
            for child in children:
                if _answer(child) != "ready":
                    raise RuntimeError("a measuring process did not get ready")
            cpu, done = [0.0, 0.0], [0, 0]
            turn, idle = number % 2, [False, False]
            while not all(idle):
                for side in (turn, 1 - turn):
                    if idle[side]:
                        continue
                    children[side].stdin.write("batch\n")
                    processed, seconds = _answer(children[side]).split()
                    idle[side] = processed == "0"
                    done[side] += int(processed)
                    cpu[side] += float(seconds)
                turn = 1 - turn
        finally:
            for child in children:
                child.stdin.close()
                child.wait(120)
        per_mail = [cpu[side] * 1000 / max(done[side], 1) for side in (0, 1)]
        ratios.append(per_mail[1] / per_mail[0])
        print(f"pair {number + 1}: A {per_mail[0]:.3f} ms, B {per_mail[1]:.3f} ms per mail "
              f"({done[0]}/{done[1]} mails), B ÷ A {ratios[-1]:.3f}, load {load:.1f}",
              flush=True)
    below = sum(ratio < 1 for ratio in ratios)
    print(f"median B ÷ A {median(ratios):.3f} over {pairs} pairs ({below} below 1)")
    return 0


def instructions(trees: list[Path], store: str, mails: int, runs: int, folder: Path) -> int:
    from bench.stats import median  # noqa: PLC0415 - this tree's, in the parent only

    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        sys.exit("--instructions needs valgrind and gcc (Debian: valgrind, gcc)")
    shim = folder / "counting.so"
    source = folder / "counting.c"
    source.write_text(_SHIM, encoding="utf-8")
    built = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(shim), str(source)],
                           capture_output=True, text=True)
    if built.returncode:
        sys.exit(f"the callgrind shim did not build (valgrind's headers?): {built.stderr}")
    print(f"instructions per mail (callgrind), {mails} mails of 3 KB, {store}; "
          f"A = {trees[0]}, B = {trees[1]}")
    found: dict[int, list[float]] = {0: [], 1: []}
    for number in range(runs):
        for side in ((0, 1) if number % 2 == 0 else (1, 0)):
            out = folder / f"callgrind-{number}-{side}.out"
            child = _child(trees[side], "instructions", store, mails,
                           folder / f"run{number}-{'AB'[side]}",
                           prefix=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                   f"--callgrind-out-file={out}", "--quiet"), shim=shim)
            child.stdin.close()
            done = int(_answer(child))
            child.wait()
            total = _instructions_in(out)
            found[side].append(total / done)
            print(f"{'AB'[side]}: {total / done / 1e6:.3f} M instructions per mail "
                  f"({done} mails)", flush=True)
    a, b = (median(found[side]) for side in (0, 1))
    print(f"B ÷ A {b / a:.3f} (medians {a / 1e6:.3f} and {b / 1e6:.3f} M)")
    return 0


def _instructions_in(out: Path) -> int:
    """The instructions counted in the dumps callgrind wrote for ``out`` (the dump at
    ``counting_off``; the one at exit, with counting off, adds nothing)."""
    return sum(int(match.group(1)) for dump in out.parent.glob(out.name + "*")
               for match in re.finditer(r"^totals: (\d+)", dump.read_text(
                   encoding="utf-8", errors="replace"), re.MULTILINE))


def _run_child(mode: str, store: str, mails: int, folder: Path) -> None:
    """In the measuring process, under the tree's own postdesk and bench."""
    from bench.process import _prepared  # noqa: PLC0415
    from bench.stores import Stores  # noqa: PLC0415

    stores = Stores(folder)
    try:
        _url, app = _prepared(stores, store, "3k", mails, SEEDS, folder)
        worker = app.worker()
        worker.warm_up()
        if mode == "instructions":
            import ctypes  # noqa: PLC0415

            shim = ctypes.CDLL(os.environ["POSTDESK_COUNTING_SHIM"])
            shim.counting_on()
            done = worker.process_until_idle()
            shim.counting_off()
            print(done, flush=True)
        else:
            print("ready", flush=True)
            for _ in sys.stdin:
                began = time.process_time()
                done = worker.process_batch()
                print(done, time.process_time() - began, flush=True)
        app.db.dispose()
    finally:
        stores.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        mode, store, mails, folder = sys.argv[2:6]
        _run_child(mode, store, int(mails), Path(folder))
    else:
        sys.exit(main())
