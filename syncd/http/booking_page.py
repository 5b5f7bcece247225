"""``/book/<token>``: the public booking page on the daemon's listener (issue 17 item 3).

Paths (``<token>`` is a booking link's; an unknown, malformed or revoked one is 404,
whatever follows it):

* ``GET /book/<token>[?tz=Zone]`` -- the free slots of the coming weeks by day in the
  visitor's zone (UTC unless ``tz`` names one), and a form for name and e-mail;
* ``POST /book/<token>`` -- books (:meth:`syncd.booking.Bookings.book`), then 303 to the
  confirmation; a refusal shows the form again with one sentence (worded in
  :data:`syncd.report.BOOKING_REASONS`) and fresh slots: 409 when the slot was just
  taken, 422 for bad input, 403 for a form that was not signed for this link or expired;
* ``GET /book/<token>/booked/<ref>`` -- the confirmation, with the ``.ics`` link;
* ``GET /book/<token>/ics/<ref>`` -- the booking as ``text/calendar``;
  ``<ref>`` is the booking's id signed for the link (only the booker was given it);
* ``GET /booking-assets/booking.css|booking.js`` -- the pages' only style and script.

Every answer carries strict headers (:data:`HEADERS`): a CSP with no inline script or
style, no framing, no referrer (the token is in the URL), no sniffing, noindex. Each
client address has a token bucket for page views and a smaller one for bookings
(:class:`~syncd.http.booking_guard.RateLimiter`, bounded memory); a request over it is
429. A form from another site is refused by the browser's ``Sec-Fetch-Site`` and by the
signed form token.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, quote

from syncd.booking import Bookings, Owner
from syncd.errors import BookingRefused
from syncd.http.booking_guard import RateLimiter, Signer
from syncd.http.booking_views import (
    ASSET_TYPES,
    ASSETS,
    FormState,
    Offer,
    booking_ics,
    booking_page,
    confirmation_page,
    message_page,
    pick_zone,
)
from syncd.http.router import Request, Response, Route
from syncd.report import visitor_message
from syncd.store.booking_links import BookingLinkStore, LinkRow

log = logging.getLogger("syncd.http")

HTML = "text/html; charset=utf-8"
MAX_FORM_BYTES = 4096
HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; "
                                "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("X-Robots-Tag", "noindex, nofollow"),
)
_STATUS = {"taken": 409, "expired": 403, "unavailable": 503}


def _fields(text: str) -> dict[str, list[str]]:
    """A query or form's fields; nothing at all when there are more than a form has."""
    try:
        return parse_qs(text, max_num_fields=10)
    except ValueError:  # more fields than that: not our form
        return {}


def _answer(status: int, body: bytes, content_type: str = HTML,
            *extra: tuple[str, str]) -> Response:
    return Response(status, body, content_type, headers=(*HEADERS, *extra))


def _not_found() -> Response:
    return _answer(404, message_page("Not found", "This booking link does not exist or is "
                                                  "no longer in use."))


class BookingPages:
    """The booking endpoints of one daemon.

    Args:
        links: the stored booking links.
        bookings: slots and booking (the CRM and the availability behind them).
        signer: signs forms and booking references (its key is in ``data_dir``).
        views, posts: rate limits per client for page views and for bookings.
    """

    def __init__(self, links: BookingLinkStore, bookings: Bookings, signer: Signer, *,
                 views: RateLimiter | None = None, posts: RateLimiter | None = None) -> None:
        self.links, self.bookings, self.signer = links, bookings, signer
        # (``is None``: an empty limiter has len() 0, so ``or`` would replace it)
        self.views = views if views is not None else RateLimiter(per_minute=60, burst=30)
        self.posts = posts if posts is not None else RateLimiter(per_minute=6, burst=5)
        self.counts: dict[str, int] = {}

    def routes(self) -> list[Route]:
        return [Route("/book", self.handle, methods=("GET", "POST"), max_body=MAX_FORM_BYTES,
                      prefix=True),
                Route("/booking-assets", self.asset, methods=("GET",), max_body=0,
                      prefix=True)]

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def asset(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[-1]
        if name not in ASSET_TYPES or request.path != f"/booking-assets/{name}":
            return _not_found()
        return _answer(200, (ASSETS / name).read_bytes(), ASSET_TYPES[name])

    def handle(self, request: Request) -> Response:
        limiter = self.posts if request.method == "POST" else self.views
        if not limiter.allow(request.remote):
            self._count("rate_limited")
            return _answer(429, message_page("Too many requests",
                                             visitor_message(BookingRefused(reason="too-many"))),
                           HTML, ("Retry-After", "60"))
        parts = request.path.split("/")  # "", "book", token, [kind, ref]
        link = self.links.resolve(parts[2]) if len(parts) in (3, 5) else None
        owner = self.bookings.owner(link) if link is not None else None
        if link is None or owner is None:
            self._count("not_found")
            return _not_found()
        base = f"/book/{parts[2]}"
        try:
            if len(parts) == 5:
                if request.method != "GET" or parts[3] not in ("booked", "ics"):
                    return _not_found()
                return self._booked(request, link, owner, parts[3], parts[4], base)
            if request.method == "POST":
                return self._post(request, link, owner, base)
            query = _fields(request.query)
            zone = pick_zone((query.get("tz") or ["UTC"])[0]) or "UTC"
            self._count("views")
            return self._form(link, owner, base, zone, FormState(), 200)
        except BookingRefused as refused:  # the owner's free time cannot be read now
            self._count("unavailable")
            return _answer(503, message_page("Not available", visitor_message(refused)),
                           HTML, ("Retry-After", "60"))

    def _offer(self, link: LinkRow, owner: Owner, *, slots: bool = True) -> Offer:
        free = [(s.start, s.end) for s in self.bookings.slots(link)] if slots else []
        return Offer(owner.name, link.activity_type.replace("_", " ").capitalize(),
                     link.duration_minutes, free)

    def _form(self, link: LinkRow, owner: Owner, base: str, zone: str, state: FormState,
              status: int) -> Response:
        body = booking_page(base, self._offer(link, owner), zone,
                            self.signer.form_token(link.id), state)
        return _answer(status, body)

    def _post(self, request: Request, link: LinkRow, owner: Owner, base: str) -> Response:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            self._count("forged")
            return _answer(403, message_page("Refused", visitor_message(
                BookingRefused(reason="expired"))))
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            form = _fields(request.body.decode("utf-8")) \
                if kind == "application/x-www-form-urlencoded" else {}
        except UnicodeDecodeError:
            form = {}

        def one(key: str) -> str:
            values = form.get(key) or [""]
            return values[0] if len(values) == 1 else ""

        zone = pick_zone(one("tz")) or "UTC"
        state = FormState(name=one("name")[:200], email=one("email")[:300], slot=one("slot"))
        checked = self.signer.check_form(one("csrf"), link.id)
        try:
            if checked is None:
                raise BookingRefused(reason="expired")
            booked = self.bookings.book(link, slot=one("slot"), name=one("name"),
                                        email=one("email"), nonce=checked.nonce)
        except BookingRefused as refused:
            self._count(f"refused_{refused.reason}".replace("-", "_"))
            keep = FormState(state.name, state.email,
                             "" if refused.reason == "taken" else state.slot,
                             visitor_message(refused), refused.field)
            return self._form(link, owner, base, zone, keep,
                              _STATUS.get(refused.reason, 422))
        self._count("booked" if booked.created else "booked_again")
        # the visitor is the one guest of a booking they made (or of the first send's)
        guests = booked.activity.guests
        ref = self.signer.booking_ref(link.id, booked.activity.id,
                                      guests[0].email if guests else "")
        where = f"{base}/booked/{ref}?tz={quote(zone, safe='/')}"
        return _answer(303, b"", HTML, ("Location", where))

    def _booked(self, request: Request, link: LinkRow, owner: Owner, kind: str, ref: str,
                base: str) -> Response:
        checked = self.signer.check_booking_ref(ref, link.id)
        activity = self.bookings.booked(link, checked.activity_id) if checked is not None \
            else None
        if activity is None:
            return _not_found()
        when = self.bookings.span(activity)
        if when is None:
            return _not_found()
        start, end = when
        if kind == "ics":
            body = booking_ics(activity, start, end, owner_name=owner.name,
                               owner_email=owner.email)
            return _answer(200, body, "text/calendar; charset=utf-8",
                           ("Content-Disposition", "attachment; filename=\"booking.ics\""))
        zone = pick_zone((_fields(request.query).get("tz") or ["UTC"])[0]) or "UTC"
        assert checked is not None
        guest = self.signer.booker(checked, link.id, (g.email for g in activity.guests))
        offer = self._offer(link, owner, slots=False)
        return _answer(200, confirmation_page(offer, start, end, zone, guest,
                                              f"{base}/ics/{ref}"))
