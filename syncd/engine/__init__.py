"""The sync engine: fetch -> plan -> guards -> execute, for one account at a time.

Public API: :func:`syncd.engine.runner.run_cycle` runs one cycle of one account under a
lease its caller took (``StateStore.begin_cycle``) and returns a
:class:`~syncd.engine.outcome.CycleReport`: an outcome, counts and the error object, no
prose. The service (:func:`syncd.service.sync_account`) builds the typed
:class:`~syncd.engine.policy.AccountPolicy`, words the report through ``syncd.report``
and finishes the cycle in the state store's status machine.

The modules, in the order a cycle uses them:

* ``policy``: the account's settings as typed data (enums for the choices);
* ``fetch``: reads the CRM source, the calendar and the state into a ``CycleInput``;
  ``settle``: echoes dropped, pending creates found, imports relinked;
* ``planning``, ``plan``, ``plan_unpaired``: the pure planner (``merge``,
  ``guestmail`` and ``echo`` are its pure helpers), plain data in ``actions``;
* ``guards``: checks on a whole plan before anything is written;
* ``execute``: runs the plans, one ``PairResult`` per pair (``writes``: one pair's CRM
  write and calendar op; ``record``: the new merge bases, a batch at a time);
* ``outcome``: reports, per-pair results and the counts made from them;
* ``runner``: ties the phases together.

The design follows the status-database sync of vdirsyncer/OfflineIMAP, extended with a
per-field three-way merge: each pair stores the last-synced projection of each side (the
merge base), and the direction of every change comes from comparing each side with its
base, never from clocks (except under the declared ``newest_wins`` policy).
"""
