"""Looking up the persons an activity's guests name, in the store's transaction.

The checks that need no database are in :mod:`syncd.crm.builtin.checks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.crm.builtin.checks import GuestSpec, PersonRef, resolve_guests_with
from syncd.crm.builtin.tables import Person


class PersonCache:
    """Persons looked up by id and by e-mail within one transaction.

    A bulk insert calls :meth:`prefetch` once with every address of the batch, so that
    linking guests to persons costs one query per batch instead of one per activity.
    Misses are cached too.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_id: dict[int, PersonRef | None] = {}
        self.by_email: dict[str, PersonRef | None] = {}

    def prefetch(self, ids: Iterable[int] = (), emails: Iterable[str] = ()) -> None:
        """Load the given persons and addresses that are not cached yet."""
        new_ids = sorted({i for i in ids if i not in self.by_id})
        new_emails = sorted({e for e in emails if e not in self.by_email})
        for start in range(0, len(new_ids), 500):
            chunk = new_ids[start:start + 500]
            self.by_id.update(dict.fromkeys(chunk))
            for pid, name, email in self.session.execute(
                    select(Person.id, Person.name, Person.email).where(Person.id.in_(chunk))):
                self.by_id[pid] = PersonRef(pid, name, email)
        for start in range(0, len(new_emails), 500):
            addresses = new_emails[start:start + 500]
            self.by_email.update(dict.fromkeys(addresses))
            query = (select(Person.id, Person.name, Person.email)
                     .where(Person.email.in_(addresses)).order_by(Person.id.desc()))
            for pid, name, email in self.session.execute(query):
                if email is not None:
                    self.by_email[email] = PersonRef(pid, name, email)  # lowest id wins


def resolve_guests(session: Session, specs: Sequence[GuestSpec],
                   cache: PersonCache | None = None) -> list[GuestSpec]:
    """Look guests up (A6) in ``session``: see :func:`resolve_guests_with`."""
    return resolve_guests_with(specs, cache or PersonCache(session))
