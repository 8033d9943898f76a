"""Crash safety of ``postdesk ingest`` (the MTA pipe): SIGKILL at random moments, retry until 0.

Two lanes, like two MTA delivery agents, pipe 100 distinct mails into ``postdesk ingest``;
about half of the runs are SIGKILLed at a random moment within their usual run time (before,
during or after the commit), and every mail is piped again until a run exits 0, as an MTA does
with a failed pipe. Raw mails go to ``[store] blob_dir`` so a kill can also land between the
blob and the row. Then the worker processes the queue: every mail must end as exactly one
message, duplicates stored by a kill after the commit must be discarded by dedupe, and no
row may point at a missing or partial blob.

The runs come from ``forkserver.py``: the real ``postdesk.cli.main()`` in a forked child of
a warm interpreter, so a run takes milliseconds instead of two seconds of imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.support import REPO, MESSAGE_ID, Store, desk_config, figures, sqlite_app
from tests.helpers import make_mail

SEED = int(os.environ.get("POSTDESK_FAULT_SEED", time.time_ns() % 1_000_000))
MAILS = 100  # about 45 kills land (at least 20 are required; 200 mails gave 93)
LANES = 2
MAX_RUNS_PER_MAIL = 60
REPIPED = 10  # mails piped again after exit 0, as by an MTA that lost the exit status


class ForkServer:
    """One ``forkserver.py`` process: ``run(args, input, kill_after)`` -> reply dict."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.forkserver"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                                     text=True, bufsize=1)

    def run(self, args: list[str], input: Path, log: Path, kill_after: float | None) -> dict:
        request = {"args": args, "input": str(input), "log": str(log), "kill_after": kill_after}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the fork server stopped")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Lane(threading.Thread):
    def __init__(self, name: str, server: ForkServer, config: Path, mails: list[Path],
                 rng: random.Random) -> None:
        super().__init__(name=name, daemon=True)
        self.server, self.config, self.mails, self.rng = server, config, mails, rng
        self.durations: list[float] = []
        self.statuses: Counter = Counter()
        self.kills = 0
        self.runs = 0
        self.unfinished: list[str] = []
        self.odd_logs: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for path in self.mails:
                if not self.ingest_until_stored(path):
                    self.unfinished.append(path.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def ingest_until_stored(self, path: Path) -> bool:
        log = path.with_suffix(".log")
        args = ["--config", str(self.config), "ingest", "--sender", "mta@example.com",
                "--recipient", "support@desk.test"]
        for _ in range(MAX_RUNS_PER_MAIL):
            kill_after = self.kill_moment()
            reply = self.server.run(args, path, log, kill_after)
            self.runs += 1
            self.statuses[reply["status"]] += 1
            self.kills += reply["status"] == -9  # a kill that came after the exit does not count
            if not reply["killed"] and reply["status"] == 0:
                self.durations.append(reply["seconds"])
            if reply["status"] == 0:
                return True
            if not reply["killed"]:
                self.odd_logs.append(log.read_text(errors="replace")[-500:])
        return False

    def kill_moment(self) -> float | None:
        """None for a clean run; else a moment within a usual run (learnt from clean runs)."""
        if len(self.durations) < 5 or self.rng.random() < 0.5:
            return None
        return self.rng.uniform(0, 1.3 * statistics.median(self.durations[-20:]))


def blob_check(blob_dir: Path, rows: list) -> dict:
    """Every row's blob exists with its sha256; count orphans and leftover temporary files."""
    referenced = {p for _, p in rows}
    bad = [p for sha, p in rows if not (blob_dir / p).exists()
           or hashlib.sha256((blob_dir / p).read_bytes()).hexdigest() != sha]
    files = [f for f in blob_dir.rglob("*") if f.is_file()]
    temporary = [f for f in files if f.name.startswith(".tmp-")]
    orphans = [f for f in files if not f.name.startswith(".tmp-")
               and str(f.relative_to(blob_dir)) not in referenced]
    return {"rows pointing at a missing or partial blob": len(bad),
            "orphan blobs (stored, row not committed)": len(orphans),
            "leftover .tmp- files (killed while writing)": len(temporary)}


@pytest.mark.slow
def test_ingest_sigkill_loop(tmp_path):
    blob_dir = tmp_path / "blobs"
    extra = f'[store]\nblob_dir = "{blob_dir}"\n'
    app = sqlite_app(tmp_path, extra)
    config = desk_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", extra)
    rng = random.Random(SEED)
    mail_dir = tmp_path / "mails"
    mail_dir.mkdir()
    ids = []
    for i in range(MAILS):
        ids.append(f"<ingest-{SEED}-{i}@example.com>")
        body = "Bonjour,\n" + "le colis n'est pas arrivé. " * rng.randint(40, 120) + "\n"
        (mail_dir / f"{i:03}.eml").write_bytes(make_mail(
            sender=f"pipe{i}@example.com", subject=f"Commande {i}", body=body,
            message_id=ids[-1]))
    paths = sorted(mail_dir.glob("*.eml"))
    servers = [ForkServer(tmp_path) for _ in range(LANES)]
    lanes = [Lane(f"lane-{n}", servers[n], config, paths[n::LANES], random.Random(SEED + n))
             for n in range(LANES)]
    started = time.monotonic()
    try:
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join(timeout=180)
        repiped = [lanes[0].server.run(["--config", str(config), "ingest"], path,
                                       path.with_suffix(".log"), None)["status"]
                   for path in rng.sample(paths, REPIPED)]
    finally:
        for server in servers:
            server.close()
    ingest_seconds = time.monotonic() - started
    for lane in lanes:
        assert lane.error is None, f"{lane.name} failed: {lane.error!r}"
    processed_count = app.worker().process_until_idle()
    store = Store(f"sqlite:///{tmp_path / 'postdesk.db'}")
    try:
        result = outcome(store, blob_dir, ids, lanes, ingest_seconds, processed_count)
    finally:
        store.close()
        app.db.dispose()
    text = figures("ingest crash safety", result)
    print(text)
    assert repiped == [0] * REPIPED, text
    assert result["mails never stored (gave up)"] == 0, text
    assert result["kills (SIGKILL)"] >= 20, text
    assert result["stored (distinct Message-IDs)"] == MAILS, text
    assert result["processed (exactly one message)"] == MAILS, text
    assert result["duplicates (ticket/message level)"] == 0, text
    assert result["duplicate inbound rows (caught by dedupe)"] >= REPIPED, text
    assert result["inbound statuses"].get("discarded", 0) == \
        result["duplicate inbound rows (caught by dedupe)"], text
    assert set(result["inbound statuses"]) <= {"processed", "discarded"}, text
    assert result["rows pointing at a missing or partial blob"] == 0, text
    assert result["exit codes other than 0 and -9"] == {}, text + "\n" + "\n".join(
        log for lane in lanes for log in lane.odd_logs[:3])


def outcome(store: Store, blob_dir: Path, ids: list[str], lanes: list[Lane],
            ingest_seconds: float, processed_count: int) -> dict:
    rows = store.rows("SELECT sha256, blob_path FROM inbound")
    stored: Counter = Counter()
    for _, path in rows:
        match = MESSAGE_ID.search((blob_dir / path).read_bytes()[:8192]) \
            if (blob_dir / path).exists() else None
        stored[match.group(1).decode() if match else None] += 1
    messages = store.incoming_messages()
    statuses = Counter()
    for lane in lanes:
        statuses.update(lane.statuses)
    durations = [d for lane in lanes for d in lane.durations]
    return {
        "seed": SEED,
        "mails": len(ids),
        "ingest runs": sum(lane.runs for lane in lanes) + REPIPED,
        "mails piped again after exit 0": REPIPED,
        "kills (SIGKILL)": sum(lane.kills for lane in lanes),
        "exit codes": dict(statuses),
        "exit codes other than 0 and -9": {k: v for k, v in statuses.items() if k not in (0, -9)},
        "median clean run (s)": round(statistics.median(durations), 3) if durations else None,
        "mails never stored (gave up)": sum(len(lane.unfinished) for lane in lanes),
        "stored (distinct Message-IDs)": sum(1 for m in ids if stored[m]),
        "inbound rows": len(rows),
        "duplicate inbound rows (caught by dedupe)": sum(stored[m] - 1 for m in ids if stored[m] > 1),
        "inbound statuses": dict(store.inbound_statuses()),
        "processed by the worker": processed_count,
        "processed (exactly one message)": sum(1 for m in ids if messages[m] == 1),
        "duplicates (ticket/message level)": sum(n - 1 for n in store.tickets_by_requester().values() if n > 1),
        **blob_check(blob_dir, rows),
        "seconds of ingest loop": round(ingest_seconds, 1),
    }
