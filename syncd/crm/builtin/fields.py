"""Looking up the persons an activity's guests name, in the store's transaction.

The checks that need no database are in :mod:`syncd.crm.builtin.checks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.crm.builtin.checks import GuestSpec, PersonRow, Persons, resolve_guests_with
from syncd.crm.builtin.tables import Person


class PersonCache(Persons):
    """Persons looked up by id and by e-mail in the store's session."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def _with_ids(self, ids: list[int]) -> Iterable[PersonRow]:
        return self.session.execute(
            select(Person.id, Person.name, Person.email).where(Person.id.in_(ids)))

    def _with_emails(self, emails: list[str]) -> Iterable[PersonRow]:
        return self.session.execute(
            select(Person.id, Person.name, Person.email)
            .where(Person.email.in_(emails)).order_by(Person.id.desc()))


def resolve_guests(session: Session, specs: Sequence[GuestSpec],
                   cache: PersonCache | None = None) -> list[GuestSpec]:
    """Look guests up (A6) in ``session``: see :func:`resolve_guests_with`."""
    return resolve_guests_with(specs, cache or PersonCache(session))
