"""The store's session listeners are bound to postdesk's own ``StoreSession``: importing postdesk
changes nothing for any other SQLAlchemy session in the same process."""

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from postdesk.store import locks, tickets  # noqa: F401 - they register the store's listeners
from postdesk.store.db import Database, StoreSession

HELD = "postdesk_held_locks"


def _listeners(session: Session) -> list:
    dispatch = session.dispatch
    return [fn for name in ("after_commit", "after_soft_rollback", "after_rollback",
                            "before_commit", "after_begin", "before_flush", "after_flush")
            for fn in getattr(dispatch, name)]


def test_a_plain_sqlalchemy_session_has_no_postdesk_listener():
    with Session(create_engine("sqlite://")) as plain:
        assert [fn for fn in _listeners(plain)
                if getattr(fn, "__module__", "").startswith("postdesk")] == []
    with StoreSession(create_engine("sqlite://")) as ours:
        modules = {getattr(fn, "__module__", "") for fn in _listeners(ours)}
    assert {"postdesk.store.locks", "postdesk.store.tickets"} <= modules


def test_a_plain_sqlalchemy_session_keeps_its_info_at_commit_and_rollback():
    engine = create_engine("sqlite://")
    with Session(engine) as plain:
        plain.info[HELD] = {"address:someone@example.org"}
        plain.execute(text("select 1"))
        plain.commit()
        assert plain.info[HELD] == {"address:someone@example.org"}
        with plain.begin():
            with plain.begin_nested() as savepoint:
                savepoint.rollback()
        assert plain.info[HELD] == {"address:someone@example.org"}


def test_postdesk_sessions_forget_their_locks_at_commit(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with db.session() as session:
            locks.held_locks(session).add("address:someone@example.org")
            holder = session
        assert HELD not in holder.info
        with db.session() as session:
            locks.held_locks(session).add("ticket:1")
            with session.begin_nested() as savepoint:
                savepoint.rollback()
            assert HELD not in session.info
    finally:
        db.dispose()
