"""``syncd verify``: audit every promise on the admin's own data (see :mod:`syncd.verify`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App


def register(sub: Any) -> None:
    verify = sub.add_parser("verify")
    verify.add_argument("--account", action="append", help="only this account (repeatable)")
    verify.add_argument("--repair", action="store_true",
                        help="delete duplicate and orphan events (the kept copy is the paired "
                             "or newest one), realign drifted pairs (the next cycle writes "
                             "the activity's values) and unpair activities sharing one event; "
                             "each change is logged in repairs.jsonl; each account is "
                             "repaired under its lease, never beside a sync cycle of it")
    verify.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                        help="with --repair: wait up to this long for an account whose "
                             "lease a sync cycle holds (default 0: leave it unrepaired)")
    verify.set_defaults(handler=_verify)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _verify(args: argparse.Namespace, app: App) -> int:
    from syncd.errors import UsageError
    from syncd.private import check_private
    from syncd.report import (
        EXIT_OK,
        EXIT_RUNTIME,
        describe_finding,
        describe_repair_failed,
        describe_repair_held,
        describe_unverified,
    )
    from syncd.service import Service
    from syncd.verify import verify

    check_private(app.config)
    service = Service(app.config, db=app.db)
    try:
        known = {a.name for a in service.accounts()}
        unknown = sorted(set(args.account or ()) - known)
        if unknown:
            raise UsageError(message=f"unknown account(s): {', '.join(unknown)}")
        audits = verify(service, args.account, repair=args.repair, wait=args.wait)
    finally:
        service.close()
    data = [{"account": a.account, "clean": a.clean, "error": a.error,
             "repair_error": a.repair_error,
             "events": a.events, "pairs": a.pairs, "activities": a.activities,
             "privacy_checked": a.privacy_checked, "removed": a.removed,
             "realigned": a.realigned, "unpaired": a.unpaired, "busy": a.busy,
             "lease_holder": a.held.holder if a.held else None, "lease_lost": a.lease_lost,
             "findings": [{"kind": f.kind, "activity_id": f.activity_id,
                           "event_ids": list(f.event_ids), "fields": list(f.fields),
                           "reason": f.reason, "remove": list(f.remove),
                           "text": describe_finding(f, a.account)} for f in a.findings]}
            for a in audits]
    lines = []
    for a in audits:
        if a.error is not None:  # (a repair that failed, then its account's re-read too)
            head = describe_unverified(a.account, a.error, repair=args.repair)
        else:
            head = (f"{a.account}: {'clean' if a.clean else f'{len(a.findings)} finding(s)'} "
                    f"({a.events} events, {a.pairs} pairs, {a.activities} activities"
                    f"{'' if a.privacy_checked else '; notes not readable, privacy not checked'})")
        if a.removed:
            head += f"; repaired: {len(a.removed)} event(s) deleted (logged in repairs.jsonl)"
        if a.realigned:
            head += (f"; realigned: {len(a.realigned)} drifted pair(s), written by the next "
                     "cycle (old values in repairs.jsonl)")
        if a.unpaired:
            head += (f"; unpaired: {len(a.unpaired)} activity(ies) sharing an event, given "
                     "their own by the next cycle (dropped pairs in repairs.jsonl)")
        if a.busy:
            head += f"; {describe_repair_held(a.account, a.held)}"
        if a.repair_error is not None and a.error is None:
            head += f"; {describe_repair_failed(a.account, a.repair_error)}"
        lines.append(head)
        lines.extend(f"  {describe_finding(f, a.account)}" for f in a.findings)
    app.emit(data, "\n".join(lines) or "No accounts to verify.")
    # A finding, or an account that could not be read or repaired, is a failure at run
    # time (README's exit codes): the other accounts were audited all the same.
    return EXIT_OK if all(a.clean for a in audits) else EXIT_RUNTIME
