"""Commands that sync: ``sync`` (one cycle), ``run`` (the daemon), ``status``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App
    from syncd.store.lite import LiteStatus


def register(sub: Any) -> None:
    sync = sub.add_parser("sync")
    sync.add_argument("--account", action="append", help="only this account (repeatable)")
    sync.add_argument("--dry-run", action="store_true", help="plan and print, write nothing")
    sync.add_argument("--force-delete", action="store_true",
                      help="let this cycle pass the deletion guards (after checking why)")
    sync.add_argument("--verbose", "-v", action="store_true", help="list every planned action")
    sync.set_defaults(handler=_sync)

    run = sub.add_parser("run")
    run.add_argument("--once", action="store_true", help="one cycle of every account, then exit")
    run.set_defaults(handler=_run)

    status = sub.add_parser("status")
    status.set_defaults(handler=_status)

    resume = sub.add_parser("resume")
    resume.add_argument("account", help="the account name, as in 'syncd status'")
    resume.set_defaults(handler=_resume)


def _sync(args: argparse.Namespace, app: App) -> int:
    from syncd.private import check_private
    from syncd.report import sync_exit_code
    from syncd.service import Service

    check_private(app.config)
    service = Service(app.config, db=app.db)
    try:
        reports = service.sync_all(names=args.account, dry_run=args.dry_run,
                                   force_delete=args.force_delete,
                                   keep_plans=args.verbose or args.dry_run)
    finally:
        service.close()
    data: list[dict[str, Any]] = [
        {"account": r.account, "outcome": r.outcome, "counts": dict(r.counts),
         "message": r.message,
         "plans": [_describe_plan(p) for p in r.plans] if args.verbose or args.dry_run else []}
        for r in reports
    ]
    lines = []
    for r, d in zip(reports, data, strict=True):
        lines.append(r.line())
        lines.extend(f"  {p}" for p in d["plans"])
    app.emit(data, "\n".join(lines) or "No accounts to sync.")
    return sync_exit_code(reports)


def _describe_plan(plan: Any) -> str:
    parts = []
    if plan.skip:
        parts.append(f"skip ({plan.skip})")
    if plan.quarantine:
        parts.append(f"quarantine ({plan.quarantine})")
    for write in (plan.crm_write, plan.cal_write):
        if write is not None:
            fields = getattr(write, "fields", None)
            suffix = f" [{', '.join(sorted(fields))}]" if fields else ""
            parts.append(type(write).__name__ + suffix)
    if plan.conflicts:
        parts.append(f"{len(plan.conflicts)} conflict(s)")
    who = f"activity {plan.activity_id}" if plan.activity_id else f"event {plan.event_id}"
    return f"{who}: " + ", ".join(parts or ["bookkeeping"])


def _run(args: argparse.Namespace, app: App) -> int:
    from syncd.daemon import run_daemon

    return run_daemon(app.config, once=args.once)


def _resume(args: argparse.Namespace, app: App) -> int:
    from syncd.errors import UsageError
    from syncd.service import Service

    service = Service(app.config, db=app.db)
    if args.account not in {a.name for a in service.accounts()}:
        raise UsageError(message=f"unknown account: {args.account}")
    before = service.state.resume(args.account)
    app.emit({"account": args.account, "was": before},
             f"{args.account}: {before} -> ok. A deletion or scope guard trips again "
             "unless the cause is fixed or 'syncd sync --force-delete' is run.")
    return 0


def _failed_items(row: dict[str, Any]) -> list[str]:
    """The account's failed items with their reasons, and where to see them all."""
    from syncd.cli_admin import shorten

    items = row["failed_items"]
    if not items:
        return []
    lines = [f"  {q['state']} {shorten(q['item'])} (attempt {q['attempts']}): "
             f"{shorten(q['reason'], 160)}" for q in items]
    lines.append(f"  details and retry: syncd quarantine --account {row['account']}")
    return lines


def _budget_line(budget: dict[str, Any]) -> str:
    """A shared provider budget's day: tokens used and left, a warning from 75 %."""
    provider, _, company = budget["scope"].partition(":")
    resets = budget["resets_at"].strftime("%Y-%m-%d %H:%M UTC")
    line = (f"{provider.capitalize()} company {company}: {budget['used']:,} of "
            f"{budget['allowance']:,} tokens used today ({budget['share']:.0%}), "
            f"{budget['left']:,} left until {resets}")
    if budget["halted_until"] is not None:
        until = budget["halted_until"].strftime("%Y-%m-%d %H:%M UTC")
        line += f"\n  calls stopped until {until}: {budget['halt_reason']}"
    elif budget["warning"]:
        line += ("\n  warning: over 75 % of the daily budget is used; syncd stops calling "
                 "when it is spent and resumes after the reset")
    return line


def _quick_status(app: App) -> list[dict[str, Any]] | None:
    """The status rows read through sqlite3 or psycopg alone (no SQLAlchemy), or None
    when the full path must answer: teams (their members come from the CRM source, which
    may be remote), a database to create or migrate, or an account without a row yet
    (which the full path makes)."""
    config = app.config
    if config.teams or app.quick is None:
        return None
    from syncd.store.lite import LiteStatus

    with app.quick.worded():
        return _lite_rows(app, LiteStatus(app.quick))


def _lite_rows(app: App, reads: LiteStatus) -> list[dict[str, Any]] | None:
    from datetime import UTC, datetime

    from syncd.status_view import budget_rows, status_rows

    config = app.config
    if config.accounts:
        accounts = [a for a in config.accounts if a.enabled]
    else:  # the embedded server's, one per user of the built-in CRM
        from syncd.crm.builtin.quick_add import QuickActivities
        from syncd.embedded_accounts import embedded_accounts

        accounts = embedded_accounts(config, QuickActivities(app.quick))
    states = reads.accounts()
    if any(a.name not in states for a in accounts):
        return None
    now = datetime.now(UTC)
    return status_rows(accounts, states, reads, reads.channels(),
                       budget_rows(reads.budget_days(now), now), config.http.public_url)


def _status(args: argparse.Namespace, app: App) -> int:
    rows = _quick_status(app)
    if rows is None:
        from syncd.service import Service

        rows = Service(app.config, db=app.db, open_crm=False).status()
    lines = [_budget_line(b) for b in rows[0]["crm_budgets"]] if rows else []
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted((row["last_counts"] or {}).items()) if v)
        lines.append(
            f"{row['account']}: {row['status']}"
            + (f" ({row['status_reason']})" if row["status_reason"] else "")
            + f"; last run {row['last_run_at'] or 'never'}: {row['last_outcome'] or '-'}"
            + (f" [{counts}]" if counts else "")
            + f"; {row['links']} linked, {row['open_conflicts']} open conflict(s), "
            f"{row['quarantined']} quarantined"
        )
        if app.config.http.listen or app.config.http.public_url or row["push"]["reason"] \
                or row["push"]["state"] != "polled":
            lines.append(f"  {row['push']['line']}")  # no push set up: no line
        lines.extend(_failed_items(row))
        if row["last_outcome"] not in (None, "ok", "dry-run") and row["last_message"]:
            lines.append(f"  {row['last_message']}")
    app.emit(rows, "\n".join(lines) or "No accounts configured.")
    return 0
