"""The processing side's write transactions give the SMTP edge its right of way on SQLite
(``Database.write_priority``, set by ``serve``'s parts): every ``session`` is announced to the
edge for as long as it lasts, and begins only once the edge is done."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from postdesk.store.db import Database
from postdesk.store.priority import WritePriority


def test_a_write_session_is_announced_to_the_edge_until_it_ends(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.write_priority = priority = WritePriority()
    waited: list[float] = []
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))

            def edge() -> None:
                began = time.monotonic()
                with priority.announce(max_wait=5):
                    waited.append(time.monotonic() - began)

            thread = threading.Thread(target=edge)
            thread.start()
            time.sleep(0.1)
            assert not waited, "the edge went in while a write session was open"
        thread.join(30)
        assert waited and waited[0] >= 0.09
        with database.reader() as session:  # a reader takes no write lock: not announced
            session.execute(text("SELECT count(*) FROM t"))
            began = time.monotonic()
            with priority.announce(max_wait=5):
                assert time.monotonic() - began < 1
    finally:
        database.dispose()
