"""A sweep's batch ends early, committed, while the SMTP edge waits for SQLite's write lock
(``Database.write_priority``), and the next batch goes on from the last ticket handled: every
due ticket is still handled once, and a waiting 250 waits for one ticket, not for hundreds."""

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
        assert claimed == [[3, 8, 9, 14, 20], [8, 9, 14, 20], [9, 14, 20], [14, 20], [20]]
