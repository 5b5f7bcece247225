"""The sync engine: a pure planner and merge, guards, and a runner that does the I/O.

Public API: :func:`syncd.engine.runner.sync_account` runs one cycle for one account;
:func:`syncd.engine.plan.plan_account` is the pure core it calls. The design follows the
status-database sync of vdirsyncer/OfflineIMAP, extended with a per-field three-way
merge: each link stores the last-synced projection of each side (the merge base), and
the direction of every change comes from comparing each side with its base, never from
clocks (except under the declared ``newest_wins`` policy).
"""
