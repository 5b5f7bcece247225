"""The booking page over plain HTTP: what it shows, what it refuses, what it reveals."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from syncd.crm.builtin.views import ActivityFilter
from syncd.http.router import Request
from tests.booking.conftest import Site


def booking(site: Site, **override: str) -> dict[str, str]:
    page = site.get().text
    slot = site.slots(page)[0]
    return {**site.form(page), "slot": slot, "name": "Ada Visitor",
            "email": "ada@example.org", **override}


def test_the_page_offers_free_slots_in_the_visitors_zone_with_strict_headers(
        site: Site) -> None:
    answer = site.get(params={"tz": "America/New_York"})
    assert answer.status_code == 200
    page = answer.text
    assert '<html lang="en">' in page and 'name="viewport"' in page
    assert "Book a meeting with Alice Owner" in page
    assert "Monday 7 December 2026" in page  # Oslo 09:00 is New York 03:00, same day
    assert ">03:00<" in page  # the first slot, 09:00 in Oslo, in the visitor's zone
    assert '<option value="America/New_York" selected>' in page
    assert "<script>" not in page and "style=" not in page  # nothing inline
    headers = answer.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_an_unknown_zone_falls_back_to_utc(site: Site) -> None:
    page = site.get(params={"tz": "Mars/Olympus<script>"}).text
    assert '<option value="UTC" selected>' in page and "Olympus" not in page


def test_booking_makes_one_busy_activity_with_the_visitor_as_guest_and_a_confirmation(
        site: Site) -> None:
    form = booking(site)
    answer = site.post(form)
    assert answer.status_code == 303
    confirmation = site.get(answer.headers["Location"].removeprefix(f"/book/{site.token}"))
    assert confirmation.status_code == 200
    assert "is booked for" in confirmation.text and "ada@example.org" in confirmation.text
    [made] = site.store.list_activities(ActivityFilter(owner_id=site.owner_id))
    assert made.busy and made.type == "meeting" and made.duration_minutes == 30
    assert made.subject == "Meeting with Ada Visitor"
    assert [(g.email, g.name) for g in made.guests] == [("ada@example.org", "Ada Visitor")]
    assert (made.due_date, made.due_time) == (date(2026, 12, 7), time(9, 0))  # Oslo time
    ics_path = confirmation.text.split('href="')[-1].split('"')[0]
    ics = site.get(ics_path.removeprefix(f"/book/{site.token}"))
    assert ics.headers["Content-Type"].startswith("text/calendar")
    assert b"DTSTART:20261207T080000Z" in ics.content
    assert form["slot"] not in site.slots(site.get().text)  # no longer offered

    again = site.post(form)  # the same form sent twice: the same booking, no second one
    assert again.status_code == 303 and again.headers["Location"] == answer.headers["Location"]
    assert len(site.store.list_activities(ActivityFilter(owner_id=site.owner_id))) == 1


def test_a_slot_taken_meanwhile_gets_taken_and_fresh_slots(site: Site) -> None:
    first, second = booking(site), booking(site)  # two visitors, the same slot
    assert first["slot"] == second["slot"] and first["csrf"] != second["csrf"]
    assert site.post(first).status_code == 303
    answer = site.post(second)
    assert answer.status_code == 409
    assert "that time is no longer free" in answer.text
    assert first["slot"] not in site.slots(answer.text) and site.slots(answer.text)
    assert 'value="Ada Visitor"' in answer.text  # what they typed is kept
    assert len(site.store.list_activities(ActivityFilter(owner_id=site.owner_id))) == 1


def test_a_form_not_signed_for_this_link_or_forged_is_refused(site: Site) -> None:
    form = booking(site)
    for csrf in ("", "x", form["csrf"][:-2] + "AA", "9999999999.abc.def"):
        answer = site.post({**form, "csrf": csrf})
        assert answer.status_code == 403, csrf
        assert "Nothing was booked" in answer.text
    _, token = site.links.create("alice@example.com", "meeting")
    moved = site.form(site.get().text)["csrf"]
    answer = site.post({**form, "csrf": moved}, headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403  # a browser's word that another site sent it
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []
    import requests

    elsewhere = requests.post(f"{site.url}/book/{token}", data=form, timeout=10)
    assert elsewhere.status_code == 403  # this link's form on another link


def test_a_signature_that_is_not_ascii_is_refused_not_a_500(site: Site) -> None:
    form = booking(site)
    expires, nonce, _ = form["csrf"].split(".")
    for csrf in (f"{expires}.{nonce}.\u00e9", f"{expires}.\u00e9.x", "\u0661\u0662.a.b"):
        assert site.post({**form, "csrf": csrf}).status_code == 403, csrf
    signer = site.pages.signer  # what no HTTP client sends, a lone surrogate, too
    assert signer.check_form(f"{expires}.\ud800.\udfff", 1) is None
    assert signer.check_booking_ref("1-\ud800", 1) is None
    for kind in ("booked", "ics"):
        assert site.get(f"/{kind}/1-\u00e9").status_code == 404
        assert site.get(f"/{kind}/1-%FF%FE").status_code == 404
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []


def test_bad_input_is_refused_with_one_sentence_and_nothing_booked(site: Site) -> None:
    cases = {"name": ("", "x" * 101, "Ada\nBcc: x"),
             "email": ("", "ada", "ada@example", "a b@example.org", "a" * 250 + "@e.org"),
             "slot": ("", "2026-12-06T09:00:00+00:00", "2027-03-01T09:00:00+00:00",
                      "yesterday", "9" * 40)}
    for field, values in cases.items():
        for value in values:
            answer = site.post(booking(site, **{field: value}))
            assert answer.status_code == 422, (field, value)
            assert 'role="alert"' in answer.text
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []


def test_a_client_over_its_rate_is_answered_429_until_its_bucket_refills(site: Site) -> None:
    form = booking(site, email="bad")
    codes = [site.post(form, same_minute=True).status_code for _ in range(6)]
    assert codes == [422] * 5 + [429]
    site.clock[0] += 10  # 6 a minute: 10 s later, one more
    assert site.post(form, same_minute=True).status_code == 422
    assert site.post(form, same_minute=True).status_code == 429
    assert site.pages.counts["rate_limited"] == 2


def test_the_rate_table_stays_bounded_whatever_the_callers() -> None:
    from syncd.http.booking_guard import RateLimiter

    limiter = RateLimiter(6, 1, max_clients=100, clock=lambda: 0.0)
    for n in range(5000):
        limiter.allow(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(limiter) == 100
    assert limiter.allow("2001:db8::1") and not limiter.allow("2001:db8::2")  # one /64


def test_a_revoked_link_answers_like_an_unknown_one(site: Site) -> None:
    unknown = site.get().url.replace(site.token, "A" * 43)
    import requests

    assert requests.get(unknown, timeout=10).status_code == 404
    form = booking(site)
    site.links.revoke(site.link.id)
    assert site.get().status_code == 404
    assert site.post(form).status_code == 404
    assert site.get().text == requests.get(unknown, timeout=10).text
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []


def test_the_page_reveals_free_slots_only_never_other_events(site: Site) -> None:
    site.store.add_activity(owner_id=site.owner_id, subject="Secret merger with Initech",
                            due_date=date(2026, 12, 7), due_time=time(10, 0),
                            duration_minutes=60, busy=True, description="Top secret",
                            location="Board room 7", note="CANARY-NOTE",
                            guests=["ceo@initech.example"])
    site.store.add_activity(owner_id=site.owner_id, subject="Free lunch with Bob",
                            due_date=date(2026, 12, 7), due_time=time(12, 0),
                            duration_minutes=60, busy=False)
    page = site.get(params={"tz": "Europe/Oslo"}).text
    for leak in ("Secret", "Initech", "Board room", "CANARY", "ceo@", "Top secret",
                 "Free lunch", "Bob"):
        assert leak not in page
    times = {s[11:16] for s in site.slots(page) if s.startswith("2026-12-07")}
    assert "09:00" not in times and "09:30" not in times  # 10:00-11:00 Oslo is busy
    assert "08:30" in times and "10:00" in times  # 09:30 and 11:00 Oslo are free
    assert "11:00" in times  # the free lunch (12:00 Oslo) blocks nothing (A4)


def test_the_ics_and_confirmation_need_the_signed_reference(site: Site) -> None:
    answer = site.post(booking(site))
    ref = answer.headers["Location"].split("/booked/")[1].split("?")[0]
    activity_id = ref.split("-")[0]
    for bad in (activity_id, f"{activity_id}-x", f"{int(activity_id) + 1}-{ref.split('-')[1]}"):
        assert site.get(f"/ics/{bad}").status_code == 404
        assert site.get(f"/booked/{bad}").status_code == 404
    assert site.get(f"/ics/{ref}").status_code == 200


def test_assets_are_served_and_nothing_else_is(site: Site) -> None:
    import requests

    css = requests.get(f"{site.url}/booking-assets/booking.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert requests.get(f"{site.url}/booking-assets/../booking_page.py",
                        timeout=10).status_code == 404
    assert requests.get(f"{site.url}/booking-assets/x.css", timeout=10).status_code == 404


def test_hostile_requests_get_a_clear_refusal_never_a_500(site: Site) -> None:
    import requests

    form = booking(site)
    many = "&".join(f"f{n}=x" for n in range(50))
    hostile = [
        site.get(f"?{many}"),
        site.get("/ics/1"), site.get("/booked/../../etc"), site.get("/x/y"),
        site.post({}),
        requests.post(site.page, data=many, timeout=10, allow_redirects=False,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
        requests.post(site.page, data=b"\xff\xfe" * 10, timeout=10, allow_redirects=False,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
        requests.post(site.page, json=form, timeout=10, allow_redirects=False),
        requests.post(site.page, data="x" * 5000, timeout=10, allow_redirects=False),
        site.post({**form, "slot": [form["slot"], form["slot"]]}),  # type: ignore[dict-item]
        site.post({**form, "name": "<script>alert(1)</script>"}),
    ]
    codes = [answer.status_code for answer in hostile]
    assert 500 not in codes and all(code < 500 for code in codes), codes
    # Markup in a name would reach the owner's event, which Google shows as HTML: refused
    # (tests/security/test_booking_names.py), and what was typed is shown back escaped.
    assert codes[-1] == 422
    echoed = site.post({**booking(site), "name": "<b>x</b>\"'", "email": "bad"}).text
    assert 'value="&lt;b&gt;x&lt;/b&gt;&quot;&#x27;"' in echoed and "<b>x" not in echoed
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []


def test_a_calendar_that_cannot_be_read_closes_the_page_instead_of_showing_free_time(
        site: Site) -> None:
    from syncd.errors import Unreachable

    def unreadable(*_args: object) -> list[object]:
        raise Unreachable(url="https://calendar.example", reason="connection refused")

    form = booking(site)
    site.pages.bookings.free = unreadable
    site.clock[0] += 60  # past the read the first view shared
    for answer in (site.get(), site.post(form)):
        assert answer.status_code == 503
        assert "Booking is not possible right now" in answer.text
        assert "calendar.example" not in answer.text
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []


def test_page_views_share_one_read_of_the_calendars_and_a_booking_reads_afresh(
        site: Site) -> None:
    from syncd.booking import VIEW_SECONDS

    reads: list[str] = []
    free = site.pages.bookings.free

    def counted(*args: Any) -> Any:
        reads.append(args[0])
        return free(*args)

    site.pages.bookings.free = counted
    for n in range(20):  # visitors from 20 addresses, each under its own rate limit
        answer = site.pages.handle(Request("GET", f"/book/{site.token}", "", {}, b"",
                                           f"192.0.2.{n}"))
        assert answer.status == 200
    assert reads == ["alice@example.com"]  # one read of the owner's calendars for all
    form = booking(site)
    site.store.add_activity(owner_id=site.owner_id, subject="Just now", busy=True,
                            due_date=date(2026, 12, 7), due_time=time(9, 0),
                            duration_minutes=60)  # the first slot, 09:00 Oslo, taken
    assert site.post(form).status_code == 409  # the booking read afresh
    assert len(reads) == 2
    assert site.post(booking(site)).status_code == 303
    site.get()
    assert len(reads) == 4  # a booking made forgets the shared read
    site.clock[0] += VIEW_SECONDS
    site.get()
    assert len(reads) == 5  # and a read is shared for VIEW_SECONDS only


def test_a_booking_keeps_the_owners_buffer_from_one_made_meanwhile(site: Site) -> None:
    from datetime import timedelta

    site.pages.bookings.buffers = lambda owner: (timedelta(minutes=15), timedelta(0))
    first = booking(site)  # two visitors: one picks 09:00 (Oslo), the other 09:30
    second = booking(site, slot=site.slots(site.get().text)[1], email="bob@example.org")
    assert site.post(first).status_code == 303
    answer = site.post(second)  # 09:30 starts as 09:00-09:30 ends: no 15 minutes between
    assert answer.status_code == 409 and "no longer free" in answer.text
    assert len(site.store.list_activities(ActivityFilter(owner_id=site.owner_id))) == 1


def test_a_name_cannot_reorder_the_owners_event_title(site: Site) -> None:
    answer = site.post(booking(site, name="Ada \u202egnp.exe\u202c \u2067x\u2069"))
    assert answer.status_code == 303
    [made] = site.store.list_activities(ActivityFilter(owner_id=site.owner_id))
    assert made.subject == "Meeting with Ada gnp.exe x"
    assert [g.name for g in made.guests] == ["Ada gnp.exe x"]
    assert site.post(booking(site, name="\u202e\u2066")).status_code == 422  # nothing left


def test_the_two_passes_of_an_hour_the_clocks_repeat_are_told_apart() -> None:
    from datetime import UTC, datetime, timedelta

    from syncd.http.booking_views import Offer, booking_page, confirmation_page

    # Los Angeles goes back from 02:00 PDT to 01:00 PST on 1 November 2026 (09:00 UTC)
    first, second = (datetime(2026, 11, 1, h, 30, tzinfo=UTC) for h in (8, 9))
    slots = [(first, first + timedelta(minutes=30)), (second, second + timedelta(minutes=30))]
    page = booking_page("/book/x", Offer("Ann", "Meeting", 30, slots),
                        "America/Los_Angeles", "csrf").decode()
    assert ">01:30 (UTC\u221207:00)<" in page and ">01:30 (UTC\u221208:00)<" in page
    assert "> – 02:00 (UTC" not in page  # 02:00 PST is shown once: no offset needed
    assert "> – 02:00<" in page
    plain = booking_page("/book/x", Offer("Ann", "Meeting", 30, slots), "Europe/Oslo",
                         "csrf").decode()
    assert ">09:30<" in plain and "(UTC" not in plain  # no repeat there: no offsets
    done = confirmation_page(Offer("Ann", "Meeting", 30, []), second,
                             second + timedelta(minutes=30), "America/Los_Angeles",
                             "ada@example.org", "/ics").decode()
    assert "01:30 (UTC\u221208:00) – 02:00" in done


def test_the_confirmation_names_the_booker_never_a_guest_the_owner_put_there_later(
        site: Site) -> None:
    answer = site.post(booking(site))
    where = answer.headers["Location"].removeprefix(f"/book/{site.token}")
    [made] = site.store.list_activities(ActivityFilter(owner_id=site.owner_id))
    site.store.edit_activity(made.id, guests=["cfo@initech.example", "ada@example.org"])
    page = site.get(where).text
    assert "Booked for ada@example.org" in page and "initech" not in page
    site.store.edit_activity(made.id, guests=["cfo@initech.example"])  # the visitor gone
    page = site.get(where).text
    assert "is booked for" in page and "initech" not in page and "Booked for" not in page
