"""A sweep's batch ends early, committed, while the SMTP edge waits for SQLite's write lock
(``Database.write_priority``), and the next batch goes on from the last ticket handled: every
due ticket is still handled once, and a waiting 250 waits for one ticket, not for hundreds.
The next batch claims twice what the cut one got through, and grows back to the limit by
doubling once the edge stops waiting."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from postdesk.scheduler import batches


class _Edge:
    """A priority whose edge waits (or not) for the whole sweep."""

    def __init__(self, waits: bool) -> None:
        self.waits = waits

    def wanted(self) -> bool:
        return self.waits

    def writing(self):
        return contextlib.nullcontext()


@pytest.mark.parametrize("waits, claims", [(False, 1), (True, 5)])
def test_a_batch_commits_early_while_the_edge_waits(database, waits, claims):
    due = [SimpleNamespace(id=n) for n in (3, 8, 9, 14, 20)]
    claimed: list[list[int]] = []

    def claim(session, after, limit, postgres):
        batch = [ticket for ticket in due if ticket.id > after][:limit]
        claimed.append([ticket.id for ticket in batch])
        return batch

    def handle(session, ticket):
        return batches.Action(ticket.id, "reminder 1", f"#{ticket.id} reminder 1 of 2 sent")

    database.write_priority = _Edge(waits)
    actions = batches.run(database, "reminder", claim, handle, limit=10)
    assert [action.ticket_id for action in actions] == [3, 8, 9, 14, 20]
    assert len(claimed) == claims
    if waits:
        assert claimed == [[3, 8, 9, 14, 20], [8, 9], [9, 14], [14, 20], [20]]


def test_batches_grow_back_to_the_limit_once_the_edge_stops_waiting(database):
    """The edge waits at the sweep's first three asks: each cut batch got through one ticket,
    so the next claims two; then no more waits, and the batches double up to the limit. No
    ticket is skipped or handled twice."""
    due = [SimpleNamespace(id=n) for n in range(1, 41)]
    asked: list[int] = []
    handled: list[int] = []

    def claim(session, after, limit, postgres):
        asked.append(limit)
        return [ticket for ticket in due if ticket.id > after][:limit]

    def handle(session, ticket):
        handled.append(ticket.id)

    class _FirstAsks(_Edge):
        def __init__(self) -> None:
            super().__init__(True)
            self.asks = 0

        def wanted(self) -> bool:
            self.asks += 1
            return self.asks <= 3

    database.write_priority = _FirstAsks()
    assert batches.run(database, "reminder", claim, handle, limit=10) == []
    assert handled == list(range(1, 41))
    assert asked == [10, 2, 2, 2, 4, 8, 10, 10, 10]
