"""What the daemon does when the state database breaks an invariant (failure mode 29).

The checks are :mod:`syncd.store.invariants` (SQL only): every one at start, and the
account's own after each of its cycles that wrote (one statement). Each violation is one
log sentence and counts on ``syncd_invariant_violations_total{invariant}``; then:

* A pair that breaks an invariant (an event or a marker linked twice in one account)
  **pauses that account**, and only it: the next cycle would write through the broken
  pairs (two activities taking turns on one event, a marker adopted by the wrong pair),
  so it must not run, but the other accounts' pairs are sound and refusing to start
  would stop them all for one account's state (failure-modes point 3.8). The account
  waits, as after the guest e-mail breaker, for ``syncd resume`` once ``syncd verify
  --repair`` has fixed its pairs.
* A schema revision other than this release's newest **refuses the start**
  (:class:`~syncd.errors.SchemaNotCurrent`): every statement of every account assumes
  the tables this release made, so no account can be synced safely, and nothing has been
  written yet when it is found.
* Pairs whose account has no row are **reported only**: no cycle reads them (an account's
  pairs are read by its name, and an account syncd serves has its row), and there is no
  account to pause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from syncd.errors import SchemaNotCurrent
from syncd.store.db import Database
from syncd.store.invariants import Violation, check_account, check_database
from syncd.store.lite import head_revision
from syncd.store.state import StateStore

log = logging.getLogger("syncd.invariants")

#: What each broken invariant is, as the log says it (count first).
WORDS = {
    "event_linked_twice": "event(s) each linked to two or more activities",
    "marker_linked_twice": "marker(s) each carried by two or more pairs",
    "link_without_account": "pair(s) whose account has no row",
}


class InvariantCheck:
    """Checks ``db`` and acts on what it finds; ``counted`` is told each violation
    (its invariant and count) for the metric."""

    def __init__(self, db: Database, counted: Callable[[str, int], None]) -> None:
        self.db, self.state, self.counted = db, StateStore(db), counted

    def at_start(self) -> list[Violation]:
        """Every invariant (three statements); accounts at fault are paused.

        Raises:
            SchemaNotCurrent: the schema is not this release's.
        """
        found = check_database(self.db)
        for violation in found:
            self._act(violation)
        schema = [v for v in found if v.invariant == "schema_not_current"]
        if schema:
            raise SchemaNotCurrent(found=schema[0].detail.split(" (", 1)[0],
                                   expected=str(head_revision()))
        return found

    def after_cycle(self, account: str) -> list[Violation]:
        """The account's own invariants (one statement); paused if it breaks one."""
        found = check_account(self.db, account)
        for violation in found:
            self._act(violation)
        return found

    def _act(self, violation: Violation) -> None:
        self.counted(violation.invariant, violation.count)
        name = violation.account
        if violation.invariant == "schema_not_current":
            return  # at_start raises; the sentence is the error's
        what = f"{violation.count} {WORDS[violation.invariant]}"
        if name is None:
            log.warning("the state database holds %s (%s); no cycle reads them, so they "
                        "are left as they are", what, violation.detail)
            return
        self.state.pause(name, f"invariant: {violation.invariant}")
        log.error("%s is paused: its sync state breaks an invariant (%s); 'syncd verify "
                  "--account %s' shows the pairs at fault and '--repair' fixes them, then "
                  "'syncd resume %s' lets it sync again", name, what, name, name)
