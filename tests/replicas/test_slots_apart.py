"""Replicas syncing different mailboxes never wait for each other's Graph slots (issue 16:
two Outlook replicas seemed to serialise; each mailbox's slots are its own rows, and a
take, a give-back or a free of one mailbox locks none of another's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from syncd.store.budget_tables import BudgetBurst, BudgetSlot
from syncd.store.db import Database
from syncd.store.limits import LimitStore

MAILBOXES = 4
TAKES = 25


@pytest.fixture
def replicas(any_db: Database) -> Iterator[list[LimitStore]]:
    """Two replicas' stores over one database, each freeing slots as a request ends."""
    with any_db.session() as s:
        s.execute(delete(BudgetSlot))
        s.execute(delete(BudgetBurst))
    yield [LimitStore(any_db, free_every=None) for _ in range(2)]


def test_replicas_on_different_mailboxes_never_find_a_slot_taken(
        replicas: list[LimitStore]) -> None:
    refused: list[str] = []
    taken: list[str] = []
    lock = threading.Lock()

    def mailbox(store: LimitStore, scope: str) -> None:
        for _ in range(TAKES):  # one request at a time, as an idle cycle sends them
            ticket = store.take_slots(scope, 4, 1, hold=60)
            with lock:
                (taken if ticket is not None else refused).append(scope)
            if ticket is not None:
                store.give_back(scope, ticket)
                store.flush()  # (what the store's thread does a moment later)

    threads = [threading.Thread(target=mailbox, args=(store, f"graph:h|app|r{r}m{m}@x.test"))
               for r, store in enumerate(replicas) for m in range(MAILBOXES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused == []  # no take ever met another mailbox's lock (nor a nap after it)
    assert len(taken) == 2 * MAILBOXES * TAKES
    assert all(store.held(f"graph:h|app|r{r}m0@x.test") == 0
               for r, store in enumerate(replicas))
