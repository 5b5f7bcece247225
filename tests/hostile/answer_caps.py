"""The answer-cap checks every provider runs (tests/hostile/test_*_answer_caps.py).

Alice's calendar is behind a :class:`~syncd_testkit.flood.FloodServer`, Bob's straight on
the same emulator; both share one database. Each check first syncs both once, healthy,
then makes some of Alice's answers hostile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from syncd.engine.outcome import CycleReport
from syncd.errors import AnswerTooLarge, Transient
from syncd.store.status import Outcome
from syncd_testkit.flood import ANNOUNCED, FloodServer
from syncd_testkit.world import World

#: Bytes a hostile server can push into loopback socket buffers after the client has
#: stopped reading (send and receive buffers together are a few MiB on Linux).
BUFFERS = 16 << 20
#: The bodies that are only stopped by the cap (the rest are stopped by their own length).
OVERSIZE = ("endless", "unannounced", "announced", "gzip_bomb")
#: Content-Length lies: smaller than the body (endless bytes follow), larger (it hangs up).
LYING = ("short_length", "long_length")


def check_stopped_at_the_cap(flood: FloodServer, cap: int) -> None:
    """The server could send no more than the cap and the buffers: the client hung up."""
    assert flood.flooded >= 1
    assert flood.sent <= cap + BUFFERS, flood.sent
    if flood.kind == "announced":
        # Refused on its Content-Length: nothing of the body was read.
        assert flood.sent <= BUFFERS < ANNOUNCED // 16, flood.sent


def check_failed_on_the_cap(report: CycleReport, cap: int) -> None:
    """The cycle failed with the cap's sentence (and was not retried into a second read)."""
    assert report.outcome == Outcome.FAILED, report.line()
    assert isinstance(report.error, AnswerTooLarge), report.error
    assert report.error.limit == cap
    assert report.message is not None
    assert f"was over syncd's {cap >> 20} MiB cap" in report.message, report.message
    assert "nothing of it was used" in report.message


Pick = Callable[[str, str], bool]


@dataclass(frozen=True)
class Side:
    """How one provider's calendar is read in these checks."""

    listing: Pick  # the requests of an incremental listing
    batch: Pick  # a batch of writes
    titles: Callable[[World], list[str]]  # the live events' titles, sorted


def _synced(alice: World, bob: World, side: Side) -> tuple[int, list[str]]:
    """Both accounts synced once, healthy: (alice's links, alice's titles)."""
    alice.add("Call one", day=10)
    alice.add("Call two", day=11)
    bob.add("Bob's call", day=12)
    assert alice.sync().outcome == Outcome.OK
    assert bob.sync().outcome == Outcome.OK
    alice.advance(minutes=5)
    bob.advance(minutes=5)
    return len(alice.state.links(alice.account.name)), side.titles(alice)


def _nothing_lost(alice: World, side: Side, synced: tuple[int, list[str]]) -> None:
    """Never read as a shorter listing: every link and every event is still there."""
    assert (len(alice.state.links(alice.account.name)), side.titles(alice)) == synced


def _bob_still_syncs(bob: World, side: Side) -> None:
    bob.add("Bob's second call", day=13)
    report = bob.sync()
    assert report.outcome == Outcome.OK, report.message
    assert side.titles(bob) == ["Bob's call", "Bob's second call"]


def oversize_listing(alice: World, bob: World, flood: FloodServer, side: Side,
                     cap: int) -> None:
    """An oversize listing page fails Alice's cycle at the cap and loses nothing."""
    synced = _synced(alice, bob, side)
    flood.flood = side.listing
    report = alice.sync()
    check_failed_on_the_cap(report, cap)
    check_stopped_at_the_cap(flood, cap)
    assert flood.flooded == 1  # nothing of it is used, so it is not asked for again
    _nothing_lost(alice, side, synced)
    _bob_still_syncs(bob, side)


def oversize_batch(alice: World, bob: World, flood: FloodServer, side: Side,
                   cap: int) -> None:
    """An oversize batch answer fails its writes; the next cycle makes each event once."""
    _synced(alice, bob, side)
    for day in (20, 21, 22):
        alice.add(f"Batched {day}", day=day)
    flood.kind = "endless"
    flood.flood = side.batch
    report = alice.sync()
    assert report.outcome != Outcome.OK, report.line()
    check_stopped_at_the_cap(flood, cap)
    _bob_still_syncs(bob, side)
    # The answer was lost, not the writes: the next cycle finds or makes each event once.
    flood.flood = lambda method, path: False
    alice.advance(minutes=5)
    again = alice.sync()
    assert again.outcome == Outcome.OK, again.message
    assert side.titles(alice) == ["Batched 20", "Batched 21", "Batched 22", "Call one",
                                  "Call two"]


def lying_length(alice: World, bob: World, flood: FloodServer, side: Side) -> None:
    """A Content-Length smaller or larger than the body fails the listing (a temporary
    failure, not the cap's), read no further than the length or the hang-up."""
    synced = _synced(alice, bob, side)
    flood.flood = side.listing
    report = alice.sync()
    assert report.outcome == Outcome.FAILED, report.line()
    assert isinstance(report.error, Transient), report.error
    assert not isinstance(report.error, AnswerTooLarge)
    assert flood.sent <= BUFFERS, flood.sent
    _nothing_lost(alice, side, synced)
    _bob_still_syncs(bob, side)
