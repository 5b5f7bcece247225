"""``syncd booking link create|list|revoke``: the public booking links (docs/booking.md).

``create`` prints the page's URL once (``[http] public_url`` + ``/book/<token>``): the
token is stored only as its SHA-256, so it cannot be shown again; a lost URL is revoked
and a new link made.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App


def register(sub: Any) -> None:
    from syncd.cli_admin import json_flag

    booking = sub.add_parser("booking")
    booking_sub = booking.add_subparsers(dest="booking_command", metavar="ACTION")
    link = booking_sub.add_parser("link", help="make, list and revoke booking links")
    link_sub = link.add_subparsers(dest="link_command", metavar="ACTION")
    create = link_sub.add_parser(
        "create", help="a new link that books OWNER; prints its URL once")
    create.add_argument("owner", metavar="OWNER", help="the CRM user's e-mail address")
    create.add_argument("--type", required=True,
                        help="the activity type a booking creates (e.g. meeting)")
    create.add_argument("--duration", type=int, default=30, help="minutes (default 30)")
    create.add_argument("--days", type=int, default=14,
                        help="how many days ahead visitors may book (default 14)")
    json_flag(create)
    create.set_defaults(handler=_create)
    listed = link_sub.add_parser("list", help="every link, revoked ones included")
    json_flag(listed)
    listed.set_defaults(handler=_list)
    revoke = link_sub.add_parser("revoke", help="revoke a link: its page answers 404")
    revoke.add_argument("id", type=int, metavar="ID")
    revoke.set_defaults(handler=_revoke)


def _links(app: App) -> Any:
    from syncd.store.booking_links import BookingLinkStore

    return BookingLinkStore(app.db)


def _create(args: argparse.Namespace, app: App) -> int:
    from syncd.cli import require
    from syncd.crm import open_source
    from syncd.crm.source import SlotBooker
    from syncd.errors import InvalidInput
    from syncd.model import normalize_email
    from syncd.store.booking_links import check_link

    config = app.config
    public = config.http.public_url
    require(public is not None, "booking links need [http] public_url (the address visitors "
                                "open) and [http] listen in the config")
    check_link(args.duration, args.days)
    source = open_source(config.crm_kind, app.db, config.crm_options,
                         default_zone=config.default_time_zone)
    require(isinstance(source, SlotBooker),
            f"booking links need a CRM that checks and books a slot in one transaction; "
            f"[crm] kind = {config.crm_kind!r} cannot book yet (the built-in CRM can)")
    owner = normalize_email(args.owner)
    if source.user(owner) is None:
        raise InvalidInput(field="OWNER", value=args.owner, reason="is not a CRM user")
    if config.crm_kind == "builtin" and args.type not in {t.key for t in
                                                          app.store.list_types()}:
        raise InvalidInput(field="--type", value=args.type,
                           reason="is not an activity type (see 'syncd type list')")
    row, token = _links(app).create(owner, args.type, duration_minutes=args.duration,
                                    horizon_days=args.days)
    url = f"{str(public).rstrip('/')}/book/{token}"
    app.emit({"id": row.id, "owner": row.owner, "type": row.activity_type,
              "duration": row.duration_minutes, "days": row.horizon_days, "url": url},
             f"Booking link {row.id} for {row.owner} ({row.activity_type}, "
             f"{row.duration_minutes} min, next {row.horizon_days} days):\n{url}\n"
             "This URL is shown once; anyone who has it can book. Revoke with "
             f"'syncd booking link revoke {row.id}'.")
    return 0


def _list(args: argparse.Namespace, app: App) -> int:
    rows = _links(app).links()
    data = [{"id": r.id, "owner": r.owner, "type": r.activity_type,
             "duration": r.duration_minutes, "days": r.horizon_days,
             "created_at": r.created_at, "revoked_at": r.revoked_at} for r in rows]
    lines = [f"{r.id}  {r.owner}  {r.activity_type}  {r.duration_minutes} min  "
             f"{r.horizon_days} days  created {r.created_at:%Y-%m-%d %H:%M}Z  "
             + (f"revoked {r.revoked_at:%Y-%m-%d %H:%M}Z" if r.revoked_at else "live")
             for r in rows]
    app.emit(data, "\n".join(lines) or "No booking links.")
    return 0


def _revoke(args: argparse.Namespace, app: App) -> int:
    row = _links(app).revoke(args.id)
    app.emit({"id": row.id, "revoked_at": row.revoked_at},
             f"Booking link {row.id} revoked; its page answers 404.")
    return 0
