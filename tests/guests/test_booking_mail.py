"""A booking e-mails its visitor exactly what docs/guest-mail.md says of a new meeting:
one invitation where the owner's account invites guests, nothing where it does not, and
nothing more in later cycles (docs/booking.md). syncd itself sends no e-mail: the
provider does, for the attendee syncd writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.booking import Bookings
from syncd.crm.builtin import BuiltinSource
from syncd.store.booking_links import BookingLinkStore
from syncd_testkit.booking import crm_free_slots
from tests.guests.test_policy import make_world, settle
from tests.guests.worlds import GuestWorld

VISITOR = "vera@example.org"
SLOT = "2026-12-10T08:00:00+00:00"  # Thursday 09:00 in Oslo, the owner's zone


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GuestWorld]:
    provider, invite = request.param
    w = make_world(request, tmp_path, provider, invite_guests=invite)
    yield w
    w.close()


@pytest.mark.parametrize("world", [(p, i) for p in ("google", "outlook", "caldav")
                                   for i in (True, False)], indirect=True,
                         ids=lambda p: f"{p[0]}-{'invite' if p[1] else 'no-invite'}")
def test_a_booking_sends_the_visitor_one_invitation_only_where_the_account_invites(
        world: GuestWorld) -> None:
    settle(world)
    source = BuiltinSource(world.store)
    links = BookingLinkStore(world.store.db)
    link, _ = links.create(world.accounts["alice"].owner, "meeting", duration_minutes=30)
    now: datetime = world.now.astimezone(UTC)
    bookings = Bookings(source, crm_free_slots(source), clock=lambda: now)
    booked = bookings.book(link, slot=SLOT, name="Vera Visitor", email=VISITOR,
                           nonce="n1")
    assert booked.created and booked.activity.busy
    invites = world.accounts["alice"].invite_guests
    assert world.cycle() == (Counter({VISITOR: 1}) if invites else Counter())
    assert world.cycle() == Counter()  # nothing more, ever, for the same booking
