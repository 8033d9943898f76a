"""The benchmark harness stays runnable: ``python -m bench --help`` works, the corpus is fixed.

No timing is asserted here: benchmarks print figures, they never pass or fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import corpus, report
from postdesk.config import AttachmentSettings
from postdesk.mail.attachment_policy import judge
from postdesk.mail.parse import parse

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--quick", "--only", "--json", "--report", "--smtp-sizes", "--smtp-paced"):
        assert option in result.stdout
    for name in ("smtp", "process", "memory", "sweep", "outbound", "peer"):
        assert name in result.stdout


def test_corpus_is_the_same_for_the_same_seed():
    for size in ("3k", "40k"):
        first = [m.raw for m in corpus.generate(size, 25, seed=3)]
        assert first == [m.raw for m in corpus.generate(size, 25, seed=3)]
        assert first != [m.raw for m in corpus.generate(size, 25, seed=4)]
    assert [m.raw for m in corpus.seed_mails(5)] == [m.raw for m in corpus.seed_mails(5)]
    assert corpus.big_mail(200_000, "x") == corpus.big_mail(200_000, "x")


def test_corpus_has_the_promised_mix():
    mails = corpus.generate("3k", 200, seed=1, tickets=10)
    assert {m.kind for m in mails} == {"new", "reply"}
    assert {m.locale for m in mails} == {"fr", "en"}
    assert any(m.attachment for m in mails) and not all(m.attachment for m in mails)
    assert len({m.message_id for m in mails}) == len(mails)
    sizes = sorted(len(m.raw) for m in mails)
    assert 2_000 < sizes[len(sizes) // 2] < 4_000


def test_the_corpus_files_take_the_usual_path():
    """Files of the 3 KB, 40 KB and mixed classes pass the default policy, signature included,
    as most real files do; the 1 MB ones break its 500 KB limit, as the seeds' limits say."""
    def verdicts(mails):
        return [v.rule for m in mails if m.attachment
                for v in judge(parse(m.raw).attachments, AttachmentSettings())]

    for mails in (corpus.generate("3k", 100, seed=1), corpus.generate("40k", 20, seed=1),
                  corpus.mixed(100, tickets=10)):
        rules = verdicts(mails)
        assert rules and set(rules) == {None}
    assert set(verdicts(corpus.generate("1m", 2, seed=1))) == {"size"}


def test_the_mixed_corpus_is_issue_24s():
    """70 % new requests, 30 % replies threaded by the tag alone or by In-Reply-To alone, some
    PDFs; the same bytes every time."""
    mails = corpus.mixed(200, tickets=10)
    assert [m.raw for m in mails] == [m.raw for m in corpus.mixed(200, tickets=10)]
    replies = [parse(m.raw) for m in mails if m.kind == "reply"]
    assert len(replies) == 60 and len(mails) == 200
    by_header = [r for r in replies if r.in_reply_to]
    assert len(by_header) == 30 and not any("[#" in r.subject for r in by_header)
    assert all("[#" in r.subject for r in replies if not r.in_reply_to)
    pdfs = [a for m in mails if m.attachment for a in parse(m.raw).attachments]
    assert pdfs and all(a.content_type == "application/pdf" for a in pdfs)
    assert {m.locale for m in mails} == {"fr", "en"}


def test_a_reply_names_its_seed_ticket_and_its_requester():
    reply = next(m for m in corpus.generate("3k", 50, seed=1, tickets=5) if m.kind == "reply")
    parsed = parse(reply.raw)
    number = int(parsed.subject.split("[#", 1)[1].split("]", 1)[0])
    seed = corpus.seed_mails(5)[number - 1]
    assert parsed.from_addr == seed.sender == reply.sender
    assert seed.message_id in parsed.references


def test_report_renders_an_empty_run():
    machine = {"nproc": 2, "cpu": "cpu", "memory_gib": 1.0, "python": "3.11", "sqlite": "3",
               "postgres": "15", "load_at_start": 0.5, "started": "now", "mode": "quick"}
    text = report.render({"machine": machine, "benchmarks": {}})
    assert "2 cores" in text and "### targets" in text


def test_a_tiny_process_run_can_be_saved_as_json(tmp_path):
    """``--json FILE`` writes every benchmark's result: the process benchmark's must be plain
    JSON (its runs were once keyed by tuples, and the file was never written)."""
    import json

    from bench import process
    from bench.stores import Stores

    stores = Stores(tmp_path)
    try:
        result = process.run(("sqlite",), "3k", 4, 1, 2, stores, tmp_path, say=lambda *_: None,
                             history=3)
    finally:
        stores.close()
    saved = json.loads(json.dumps(result))
    assert [(r["history"], r["processed"]) for r in saved["runs"]] == [(0, 4), (3, 4)]
    assert {r["history"] for r in saved["summary"]} == {0, 3}


def test_the_peer_benchmark_is_skipped_without_the_peer_venv(tmp_path):
    """``python -m bench --only peer`` on a machine without django-helpdesk's venv says why
    and goes on (the test suite never needs Django)."""
    from bench import peer

    said = []
    for environ in ({}, {peer.PYTHON_ENV: str(tmp_path / "no-such-python")}):
        result = peer.run(10, 1, 2, stores=None, workdir=tmp_path, say=said.append,
                          environ=environ)
        assert result["skipped"] and result["summary"] == []
    assert len(said) == 2 and all(line.startswith("  peer skipped: ") for line in said)
    assert peer.PYTHON_ENV in said[0]
    text = report.render({"machine": {"nproc": 2, "cpu": "cpu", "memory_gib": 1.0,
                                      "python": "3.11", "sqlite": "3", "postgres": "15",
                                      "load_at_start": 0.5, "started": "now", "mode": "quick"},
                          "benchmarks": {"peer": result}})
    assert "### peer" in text and "skipped: " in text and "not measured (peer skipped)" in text


def test_the_peers_corpus_names_the_same_tickets_in_its_own_tag():
    """The mixed corpus as django-helpdesk gets it: ``[#N]`` written ``[bench-N]``, every other
    mail byte for byte the same, so both products have the same replies to thread."""
    from bench import peer

    mails = corpus.mixed(200, tickets=10)
    adapted = [peer.for_peer(m.raw) for m in mails]
    named = [peer.seed_ticket(m.raw) for m in mails]
    assert sum(1 for n in named if n) == 60 and all(n for m, n in zip(mails, named)
                                                     if m.kind == "reply")
    assert named == [peer.seed_ticket(raw, slug=peer.SLUG) for raw in adapted]
    for mail, raw in zip(mails, adapted):
        before, after = parse(mail.raw), parse(raw)
        assert "[#" not in after.subject and after.text == before.text
        if "[#" in before.subject:
            assert after.subject == before.subject.replace("[#", f"[{peer.SLUG}-")
        else:
            assert raw == mail.raw


def test_threading_counts_what_became_of_each_mail():
    from bench import peer

    mails = corpus.mixed(20, tickets=3)
    expected = [peer.seed_ticket(m.raw) for m in mails]
    right = [want or 100 + i for i, want in enumerate(expected)]
    found = peer.threading_of(mails, right, seeds=3)
    assert found["all_threaded"] and found["replies"] == found["replies_threaded"] == 6
    assert found["new_requests"] == found["new_tickets"] == 14
    wrong = [100 + i for i in range(20)]  # every reply opened a ticket of its own
    assert not peer.threading_of(mails, wrong, seeds=3)["all_threaded"]


def test_the_peer_table_pairs_each_run_with_its_postdesk_run_and_reads_the_target():
    """Each peer run is compared with the postdesk run next to it (its ``pair``), not with a
    median of postdesk runs taken at other loads; the target line reads the median ratio."""
    from bench import peer

    def run(side, pair, per_s, cpu):
        return {"side": side, "pair": pair, "round": 0, "per_s": per_s, "cpu_ms_per_mail": cpu,
                "replies_threaded": 3, "replies": 3, "new_tickets": 7, "new_requests": 7,
                "all_threaded": True, "notifications": 7, "load": 1.0}

    found = [run("postdesk", 0, 100.0, 4.0), run("default", 0, 10.0, 20.0),
             run("postdesk", 1, 300.0, 3.0), run("wal", 1, 60.0, 12.0)]
    rows = {r["side"]: r for r in peer.summarise(found, 10)}
    assert rows["default"]["ratio"] == 10.0 and rows["default"]["cpu_ratio"] == 5.0
    assert rows["wal"]["ratio"] == 5.0 and rows["wal"]["cpu_ratio"] == 4.0
    assert rows["postdesk"]["per_s"] == 200.0 and "ratio" not in rows["postdesk"]
    text = "\n".join(report.targets({"peer": {"summary": list(rows.values())}}))
    assert "10.00× — met" in text and "5.00× — NOT met" in text


def test_two_trees_can_be_compared_pair_by_pair(tmp_path):
    """``bench.compare`` runs one process per tree and prints their ratio (here one tree twice,
    a handful of mails: a check that it runs, not a figure)."""
    result = subprocess.run([sys.executable, "-m", "bench.compare", str(ROOT), str(ROOT),
                             "--mails", "4", "--pairs", "1"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "pair 1: A " in result.stdout and "(4/4 mails)" in result.stdout
    assert "median B ÷ A" in result.stdout
    refused = subprocess.run([sys.executable, "-m", "bench.compare", str(tmp_path), str(ROOT)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "not a postdesk source tree" in refused.stderr


@pytest.mark.parametrize("commit_ms", [(), ("2",)])
def test_the_edge_sink_answers_as_postdesk_and_stores_nothing(tmp_path, commit_ms):
    """``bench.edge_sink`` is postdesk's SMTP edge (its replies, its INFO line per accepted
    mail) with an accept that stores nothing: each mail gets the next id, at once or after a
    group commit that sleeps."""
    import smtplib  # noqa: PLC0415

    from bench import procs  # noqa: PLC0415

    log = tmp_path / "edge-sink.log"
    proc, port = procs.start_sink(log, "bench.edge_sink", *commit_ms)
    try:
        mails = corpus.generate("3k", 2, seed=5, tickets=0)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30) as client:
            replies = [client.sendmail(m.sender, [corpus.DESK], m.raw) for m in mails]
            client.mail(mails[0].sender)
            refused = client.rcpt("someone@elsewhere.test")  # a domain the desk does not serve
    finally:
        assert procs.stop(proc) == 0
    assert replies == [{}, {}]
    assert refused[0] == 550
    text = log.read_text()
    assert "accepted raw mail id=1 size=" in text and "accepted raw mail id=2 size=" in text


def test_the_floor_times_the_worker_and_replays_its_statements(capsys):
    """``bench.floor`` prints the worker's CPU inside and outside SQLAlchemy's calls, its
    statements replayed on the driver, and the worker with them sent on the cursor (a handful of
    mails: a check that it runs, not a figure). The replay and the thin pass are checked
    against the rows of the passes they stand for, or the run stops."""
    from bench import floor  # noqa: PLC0415

    assert floor.main(["--store", "sqlite", "--mails", "6", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    run = dict(pair.rsplit(" ", 1) for pair in out.split("run 1: ", 1)[1].split("\n", 1)[0]
               .split(", "))
    assert float(run["mails"]) == 6 and float(run["recorded_mails"]) == 6
    assert float(run["statements"]) > 1
    assert 0 < float(run["replayed"]) < float(run["inside"]) < float(run["total"])
    assert float(run["floor"]) < float(run["total"])
    assert "| **floor**: outside + replayed |" in out
    assert 0.9 < float(run["thin_share"]) <= 1 and float(run["thin"]) > 0
    assert "| **thin ÷ plain** |" in out


def test_a_replay_that_leaves_other_rows_is_told(tmp_path):
    """The replay's check is not vacuous: the worker's statements replayed without its message
    INSERTs leave other rows than the worker did."""
    from bench import floor  # noqa: PLC0415
    from bench.process import _prepared  # noqa: PLC0415
    from bench.stores import Stores, make_app  # noqa: PLC0415

    stores = Stores(tmp_path)
    try:
        source, app = _prepared(stores, "sqlite", "3k", 4, 3, tmp_path)
        app.db.dispose()
        recorded_url, whole_url, cut_url = (stores.copy(source, label) for label in "abc")
        recorded = make_app(tmp_path / "a", recorded_url)
        recorder = floor.Recorder(recorded.db.engine)
        assert recorded.worker().process_until_idle() == 4
        recorder.remove()
        recorded.db.dispose()
        cut = [entry for entry in recorder.log if "INSERT INTO message" not in str(entry[2])]
        for label, url, log in (("whole", whole_url, recorder.log), ("cut", cut_url, cut)):
            app = make_app(tmp_path / label, url)
            floor.replay(log, app.db.engine, sqlite=True)
            app.db.dispose()
        assert floor._rows(whole_url) == floor._rows(recorded_url)
        assert floor._rows(cut_url)["message"] < floor._rows(recorded_url)["message"]
    finally:
        stores.close()


def test_a_paced_blast_sends_no_mail_before_its_time(tmp_path):
    """``bench.client`` at a fixed rate: mail *i* leaves no earlier than *i* ÷ rate after the
    start, so 12 mails at 40/s take at least 11 intervals; unpaced, the same mails go as fast
    as the do-nothing sink answers."""
    from bench import procs  # noqa: PLC0415
    from bench.client import run_blast  # noqa: PLC0415

    proc, port = procs.start_sink(tmp_path / "sink.log")
    try:
        mails = corpus.generate("3k", 12, seed=7, tickets=0)
        paced = run_blast(port, mails, 4, rate=40)
        unpaced = run_blast(port, mails, 4)
    finally:
        procs.stop(proc)
    assert (paced.sent, paced.refused, paced.errors, paced.rate) == (12, 0, [], 40)
    assert paced.wall >= 11 / 40
    assert unpaced.sent == 12 and unpaced.rate is None and unpaced.behind == 0


def test_paced_rows_are_shown_beside_the_targets_not_judged_by_them():
    """A paced run's row says its pace; the p99 target is read from the unpaced rows only, and
    the paced ratio is printed as such."""
    def row(server, rate=None, p99=2.0, ratio=None):
        return {"size": "3k", "concurrency": 8, "rate": rate, "server": server, "runs": 1,
                "behind": 0, "accepted_per_s": 100.0, "processed_per_s": None, "p50_ms": 1.0,
                "p99_ms": p99, "ratio_accepted": 1.0, "ratio_processed": None,
                "ratio_p99": ratio, "client_cpu": 0.1, "server_cpu": 0.1}
    smtp = {"summary": [row("do-nothing"), row("postdesk-postgres", ratio=5.0),
                        row("do-nothing", 100), row("postdesk-postgres", 100, 6.0, 6.5),
                        row("a durable commit alone, postgres", 100, 1.3, 1.9)]}
    lines = report.targets({"smtp": smtp})
    assert "- p99 DATA→250 ≤ 2× do-nothing (3k, 8 clients, postdesk-postgres): 5.00× — NOT met" \
        in lines
    paced = [line for line in lines if "paced" in line]
    assert paced == ["- (paced, not a target) p99 DATA→250 at 100 mails/s offered (3k, 8 "
                     "clients, postdesk-postgres): 6.50× the do-nothing server's at the same "
                     "pace (6.0 ms)"]
    assert "| 3k | 8, paced 100/s | postdesk-postgres |" in "\n".join(report.smtp(smtp))


def test_a_durable_commit_alone_is_timed_at_the_pace_on_postdesks_own_connection(tmp_path):
    """The paced runs' floor: each mail's bytes inserted and committed alone, one transaction
    each, at the pace, on a connection of postdesk's engine (SQLite here: WAL, ``BEGIN
    IMMEDIATE``); its store is dropped afterwards."""
    from bench import smtp  # noqa: PLC0415
    from bench.stores import Stores  # noqa: PLC0415

    stores = Stores(tmp_path)
    try:
        found = smtp.commit_alone(stores, "sqlite", corpus.generate("3k", 6, seed=3, tickets=0),
                                  rate=200)
    finally:
        stores.close()
    assert (found["sent"], found["rate"], found["refused"]) == (6, 200, 0)
    assert 0 < found["p50_ms"] <= found["p99_ms"]
    assert found["accepted_per_s"] <= 200 * 6 / 5  # paced: 6 mails take 5 intervals at least
    assert not list(tmp_path.glob("commit-*.db"))


def test_the_thin_path_reads_and_writes_what_sqlalchemy_does(database):
    """``bench.thin`` gives the worker what SQLAlchemy's execution gives, on each store: a
    contact written with RETURNING (an aware datetime in, the same out), read back by address,
    a row changed, and its bounce columns (a float, whose conversion psycopg chooses by the
    cursor's type code); every statement sent on the cursor."""
    import contextlib  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from bench import thin  # noqa: PLC0415
    from postdesk.store import contacts, tickets  # noqa: PLC0415

    now = datetime(2026, 12, 7, 12, 30, 15, 123456, tzinfo=UTC)
    seen = {}
    for label in ("sqlalchemy", "thin"):
        address = f"{label}@example.org"
        with thin.installed() if label == "thin" else contextlib.nullcontext() as counts, \
                database.session() as session:
            added = dict(tickets.add_contact(session, address, "A Name", now)._mapping)
            tickets.forget_contacts(session)
            completed = tickets.complete_contact(session, tickets.contact(session, address),
                                                 "Other", "fr")
            contacts.set_bounce_state(session, completed.id, 1.5, now, None)
            bounces = contacts.bounce_state(session, address)
            seen[label] = [{key: value for key, value in row.items() if key != "id"}
                           for row in (added, dict(completed._mapping), dict(bounces._mapping))]
        if counts is not None:
            assert counts.through_sqlalchemy == 0 and counts.thin == 6
    for row in seen["thin"]:
        row["address"] = "sqlalchemy@example.org"
    assert seen["thin"] == seen["sqlalchemy"]
    assert seen["thin"][1]["locale"] == "fr" and seen["thin"][1]["created_at"] == now
    assert seen["thin"][2]["bounce_score"] == 1.5 and seen["thin"][2]["last_bounce_at"] == now


def test_the_thin_path_raises_sqlalchemys_error_without_the_values(database):
    """A statement refused by the database comes back from ``bench.thin`` as SQLAlchemy's own
    exception class (what the worker tells conflicts by), its values hidden as the engine
    hides them (a mail's text must not reach a log)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    from bench import thin  # noqa: PLC0415
    from postdesk.store import tickets  # noqa: PLC0415

    now = datetime(2026, 12, 7, tzinfo=UTC)
    with thin.installed() as counts, pytest.raises(IntegrityError) as raised, \
            database.session() as session:
        tickets.add_contact(session, "twice@example.org", "secret-name", now)
        tickets.forget_contacts(session)
        tickets.add_contact(session, "twice@example.org", "secret-name", now)
    assert counts.thin == 2 and "secret-name" not in str(raised.value)
