"""Templates that do too much work: refused when saved, replaced by the default when they run.

A template that loops over loops (``{% for %}`` over ``'x' * 10000``, three deep) would take
hours and never stop on its own. Saved through the CLI, it is refused at once with one line.
A version already in the store that only loops for real tickets (its ``if`` skips the example
ticket) runs out of its budget when a real mail comes: the mail gets the packaged default,
its ticket gets a ``template_fallback`` event, and ``serve`` keeps taking other mail and lets
an admin revert the template while it runs.
"""

from __future__ import annotations

import json
import smtplib
import time

import pytest

from postdesk import config
from postdesk.runtime.app import App
from postdesk.store import migrate
from postdesk.store import template_versions as versions
from postdesk.store.clock import utcnow
from tests.faults.support import Serve, Store, figures, wait_until
from tests.helpers import make_mail

LOOPS = ("{% for a in 'x' * 10000 %}{% for b in 'x' * 10000 %}{% for c in 'x' * 10000 %}"
         "{{ c }}{% endfor %}{% endfor %}{% endfor %}\n")
ONLY_FOR_REAL_TICKETS = "{% if ticket.id != 1042 %}" + LOOPS + "{% endif %}{{ ticket.ref }}\n"


def sqlite_serve(tmp_path) -> tuple[Serve, Store]:
    url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    # worker, sender and scheduler as threads of the one serve process: the budget is the
    # renderer's, wherever it runs (the edge still answers, here beside the looping template)
    serve = Serve(tmp_path, url, "[worker]\npoll_seconds = 0.2\nseparate_process = false\n")
    serve.run("init")
    return serve, Store(url)


def lines_of(data: bytes) -> list[str]:
    return [line for line in data.decode(errors="replace").splitlines() if line.strip()]


@pytest.mark.timeout(120)
def test_looping_template_saved_with_the_cli_is_refused_at_once_with_one_line(tmp_path):
    serve, store = sqlite_serve(tmp_path)
    (tmp_path / "loops.txt").write_text(LOOPS, encoding="utf-8")
    (tmp_path / "guarded.txt").write_text(ONLY_FOR_REAL_TICKETS, encoding="utf-8")
    try:
        found = {}
        for name in ("loops.txt", "guarded.txt"):
            started = time.monotonic()
            result = serve.run("templates", "save", "ticket_created", "--locale", "fr",
                               "--part", "text", "--file", name, check=False, timeout=60)
            found[name] = {"exit": result.returncode, "seconds": round(time.monotonic() -
                                                                        started, 2),
                           "stderr": lines_of(result.stderr)}
        text = figures("looping templates saved with the CLI", found)
        print(text)
        for outcome in found.values():
            assert outcome["exit"] == 1, text
            reason, summary = outcome["stderr"]
            assert reason.startswith("postdesk: text, line 1: ") and "budget" in reason, text
            assert summary.startswith("postdesk: nothing saved"), text
        assert store.scalar("SELECT count(*) FROM template_version") == 0
    finally:
        store.close()


@pytest.mark.timeout(180)
def test_template_looping_only_for_real_tickets_falls_back_to_default_while_serve_answers(
        tmp_path):
    serve, store = sqlite_serve(tmp_path)
    app = App(config.load(serve.config, environ={}))
    migrate.upgrade(app.db)
    with app.db.session() as session:  # saved before the budget existed: no check ran
        for locale in ("fr", "en"):
            versions.save_parts(session, "ticket_created", locale,
                                {"text": ONLY_FOR_REAL_TICKETS}, "old", "loops", utcnow())
    app.db.dispose()
    try:
        serve.start()
        sent = {}
        for n in (1, 2):
            started = time.monotonic()
            with smtplib.SMTP("127.0.0.1", serve.port, timeout=30) as smtp:
                smtp.sendmail(f"c{n}@example.com", ["support@desk.test"],
                              make_mail(sender=f"c{n}@example.com",
                                        message_id=f"<budget-{n}@example.com>"))
            sent[n] = round(time.monotonic() - started, 2)
            wait_until(lambda n=n: store.scalar(
                "SELECT count(*) FROM inbound WHERE status = 'processed'") == n,
                60, f"mail {n} to be processed", log=serve.log)
        events = store.rows("SELECT ticket_id, data FROM event WHERE kind = 'template_fallback'")
        acks = store.rows("SELECT raw FROM outbox WHERE template = 'ticket_created'")
        revert = serve.run("templates", "revert", "ticket_created", "--locale", "en",
                           "--to-default", check=False, timeout=60)
        text = figures("looping template at send time", {
            "SMTP seconds": sent, "fallback events": len(events),
            "first event": json.loads(events[0][1]) if events else None,
            "revert": (revert.returncode, lines_of(revert.stderr or revert.stdout))})
        print(text)
        assert len(events) == 2, text
        assert "budget" in json.loads(events[0][1])["error"], text
        assert len(acks) == 2 and all(b"xxxx" not in bytes(raw) for (raw,) in acks), text
        assert revert.returncode == 0, text
    finally:
        serve.kill()
        store.close()
