"""Review of "a ticket opened in the transaction knows its thread without a query"
(store/tickets.py ``_opened``): what it knows must stay what the table holds."""

from __future__ import annotations

from postdesk.store import tickets
from postdesk.store.clock import utcnow


def test_a_ticket_merged_away_in_its_own_transaction_has_no_thread_left(make_app):
    app = make_app()
    now = utcnow()
    with app.db.session() as session:
        target = tickets.open_ticket(session, now, subject="old", requester="a@example.com")
        source = tickets.open_ticket(session, now, subject="new", requester="a@example.com")
        tickets.add_message(session, source.id, now, direction="in", kind="customer",
                            message_id="<m1@example.com>")
        tickets.move_messages(session, source.id, target.id)
        known = (tickets.thread_message_ids(session, source.id),
                 tickets.thread_seen_by_customer(session, source.id))
        tickets._opened(session).clear()  # noqa: SLF001 - what the table says
        read = (tickets.thread_message_ids(session, source.id),
                tickets.thread_seen_by_customer(session, source.id))
    assert known == read == ([], ([], None))
