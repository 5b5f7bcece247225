"""``syncd verify``: audit every promise on the admin's own data (see :mod:`syncd.verify`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App


def register(sub: Any) -> None:
    verify = sub.add_parser(
        "verify", help="audit each account: duplicates, orphans, drift, missing events, "
                       "notes found in events (read-only unless --repair)")
    verify.add_argument("--account", action="append", help="only this account (repeatable)")
    verify.add_argument("--repair", action="store_true",
                        help="delete duplicate and orphan events (the kept copy is the paired "
                             "or newest one), realign drifted pairs (the next cycle writes "
                             "the activity's values) and unpair activities sharing one event; "
                             "each change is logged in repairs.jsonl")
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace, app: App) -> int:
    from syncd.errors import UsageError
    from syncd.private import check_private
    from syncd.report import describe_finding
    from syncd.service import Service
    from syncd.verify import verify

    check_private(app.config)
    service = Service(app.config, db=app.db)
    try:
        known = {a.name for a in service.accounts()}
        unknown = sorted(set(args.account or ()) - known)
        if unknown:
            raise UsageError(message=f"unknown account(s): {', '.join(unknown)}")
        audits = verify(service, args.account, repair=args.repair)
    finally:
        service.close()
    data = [{"account": a.account, "clean": a.clean, "error": a.error,
             "events": a.events, "pairs": a.pairs, "activities": a.activities,
             "privacy_checked": a.privacy_checked, "removed": a.removed,
             "realigned": a.realigned, "unpaired": a.unpaired, "busy": a.busy,
             "findings": [{"kind": f.kind, "activity_id": f.activity_id,
                           "event_ids": list(f.event_ids), "fields": list(f.fields),
                           "reason": f.reason, "remove": list(f.remove),
                           "text": describe_finding(f, a.account)} for f in a.findings]}
            for a in audits]
    lines = []
    for a in audits:
        if a.error is not None:
            lines.append(f"{a.account}: could not be verified: {a.error}")
            continue
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
            head += ("; drift or shared events not repaired: a cycle holds the account, run "
                     "verify --repair again")
        lines.append(head)
        lines.extend(f"  {describe_finding(f, a.account)}" for f in a.findings)
    app.emit(data, "\n".join(lines) or "No accounts to verify.")
    return 0 if all(a.clean for a in audits) else 1
