"""Keeping each account's push channel alive: open, renew, stop, and check liveness.

The daemon calls :meth:`ChannelKeeper.maintain` after every cycle that ran while this
replica held the account's lease. A connector that can be notified (a
:class:`~connectors.base.Watchable`) gets a channel pointing at
``{[http] public_url}/hooks/{push_kind}``; it is renewed before it expires, re-created
when it was marked degraded, and stopped when the account goes away. Everything else is
polled, and the account's status says why.

What is decided here, and why:

* A channel is renewed when less than a quarter of its lifetime is left, and never later
  than two backstop intervals before it ends: the backstop poll guarantees a cycle in
  that time, and only cycles renew.
* A renewal that keeps the channel's id (a Graph subscription extended in place) keeps
  its token too: the provider goes on echoing the old one. A renewal that made a new
  channel (Google cannot extend one) stops the old channel once the new one is saved,
  so no notification falls between them.
* A provider that refuses to notify (:class:`~syncd.errors.PushRefused`) is asked again
  only after :data:`REFUSED_RETRY`, or sooner when the account's config or the public
  URL changed: refusals are policies, and asking each cycle would only spend requests.
* Any other failure is logged and tried again at the next cycle; it never fails the sync
  cycle, because polling still works.
* Liveness: when the cycle wrote to the calendar and the provider notifies syncd's own
  writes, a notification is due within ``[push] liveness_seconds``. None coming marks
  the channel degraded (:meth:`missed`): the account is polled at its normal interval
  and its next cycle re-creates the channel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.base import Channel, Watchable
from syncd.config import AccountConfig
from syncd.errors import PushRefused
from syncd.report import MISSED_NOTIFICATION, NO_PUSH, RENEWAL_FAILED, describe
from syncd.store.base import utcnow
from syncd.store.channels import ACTIVE, REFUSED, ChannelRow, ChannelStore

log = logging.getLogger("syncd.channels")

#: How long a new channel is asked to last (providers shorten it: Graph allows about
#: three days for calendars, Google up to a month; the returned channel says).
REQUESTED_LIFETIME = timedelta(days=7)
#: How long a refusal stands before the provider is asked again.
REFUSED_RETRY = timedelta(days=1)
#: The most of a provider's channel that is stored (the id's column holds 300).
MAX_CHANNEL_ID, MAX_RESOURCE_ID, MAX_DETAILS = 300, 2000, 8000

# What maintain did (for the debug log and the tests).
POLLED = "polled"  # no channel: no public URL, or the connector cannot be notified
KEPT = "kept"  # a healthy channel, not due for renewal
OPENED = "opened"  # a new channel (none before, or degraded, or expired)
RENEWED = "renewed"  # renewed as a new channel; the old one stopped
EXTENDED = "extended"  # renewed in place (same id, same token)
REFUSED_NOW = "refused"  # the provider refused; polled
STILL_REFUSED = "still-refused"  # refused earlier; not asked again yet
FAILED = "failed"  # could not be asked now; the next cycle tries again


@dataclass(frozen=True)
class PushSettings:
    """The push options the keeper works with (``[http] public_url`` and ``[push]``)."""

    public_url: str | None
    backstop: timedelta = timedelta(minutes=15)
    liveness: timedelta = timedelta(seconds=180)

    def address(self, kind: str) -> str | None:
        """Where the provider of ``kind`` must deliver, if syncd has a public URL."""
        if self.public_url is None:
            return None
        return f"{self.public_url.rstrip('/')}/hooks/{kind}"


def renewal_margin(row: ChannelRow, backstop: timedelta) -> timedelta:
    """How long before its end a channel is renewed: a quarter of its lifetime, and at
    least two backstop intervals (only cycles renew, and the backstop bounds their gap)."""
    lifetime = (row.expires_at - row.created_at) if row.expires_at and row.created_at \
        else timedelta(0)
    return max(lifetime / 4, 2 * backstop)


class ChannelKeeper:
    """Opens, renews and stops the accounts' push channels (rows of :class:`ChannelStore`).

    ``owner`` is the replica's lease owner id (:func:`syncd.store.state.lease_owner_id`),
    recorded with each channel it opens; ``clock`` gives the current UTC time (tests).
    """

    def __init__(self, channels: ChannelStore, settings: PushSettings, *, owner: str,
                 clock: Callable[[], datetime] = utcnow,
                 lifetime: timedelta = REQUESTED_LIFETIME,
                 refused_retry: timedelta = REFUSED_RETRY) -> None:
        self.channels = channels
        self.settings = settings
        self.owner = owner
        self.clock = clock
        self.lifetime = lifetime
        self.refused_retry = refused_retry
        # With push off: accounts seen without a row. Only a keeper with a public URL
        # makes rows, so each account is looked at once per process, not every cycle.
        self._clear: set[str] = set()

    # --- after a cycle -----------------------------------------------------------------

    def maintain(self, account: AccountConfig, connector: object, *,
                 wrote_calendar: bool, since: datetime | None = None) -> str:
        """Bring the account's channel to where it should be after a cycle; returns what
        was done (one of the module's constants). ``wrote_calendar``: the cycle's writes
        reached the calendar; ``since``: when the cycle began (a notification heard since
        then already answered its writes). Never raises: push is an optimisation over
        polling, and the cycle's outcome does not depend on it."""
        try:
            return self._maintain(account, connector, wrote_calendar, since)
        except Exception as exc:  # e.g. the database went away; the next cycle tries again
            log.warning("account %s: its push channel could not be checked (tried again "
                        "next cycle): %s", account.name, describe(exc, account))
            log.debug("push channel failure", exc_info=True)
            return FAILED

    def _maintain(self, account: AccountConfig, connector: object, wrote_calendar: bool,
                  since: datetime | None) -> str:
        name = account.name
        if self.settings.public_url is None:  # push is off: stop what an earlier run opened
            if name not in self._clear:
                if self.channels.get(name) is None:
                    self._clear.add(name)
                else:
                    self.forget(name, connector)
            return POLLED
        row = self.channels.get(name)
        if not isinstance(connector, Watchable):
            if row is None or row.state != REFUSED or row.reason != NO_PUSH:
                self.channels.refuse(name, account.provider, NO_PUSH, now=self.clock())
            return POLLED
        address = self.settings.address(connector.push_kind)
        assert address is not None  # (public_url is set)
        now = self.clock()
        if row is not None and row.state == REFUSED:
            if row.reason != NO_PUSH and not self._ask_again(account, row, now):
                return STILL_REFUSED
            row = None  # asked anew: no channel to renew or stop
        done = KEPT
        if not _current(row, now, self.settings.backstop):
            done = self._open_or_renew(account, connector, address, row, now)
        elif (resume := getattr(connector, "resume", None)) is not None:
            # A connector made after a restart (or on the replica that took the account
            # over) learns the channel it holds: CalDAV names it in Push-Dont-Notify.
            resume(_channel(row))
        if wrote_calendar and done in (KEPT, EXTENDED) and connector.notifies_own_writes:
            # A channel opened just now was not there for this cycle's writes, so only
            # one that was expects their notification.
            self.channels.expect(name, now + self.settings.liveness, unheard_since=since)
        return done

    def _open_or_renew(self, account: AccountConfig, connector: Watchable, address: str,
                       row: ChannelRow | None, now: datetime) -> str:
        name, kind = account.name, connector.push_kind
        old = _channel(row)
        # An expired channel is gone at the provider (a Graph subscription cannot be
        # extended then), and a degraded one is presumed dead: both are replaced.
        renewable = old is not None and row is not None and row.state == ACTIVE \
            and old.expires_at > now
        channel_id, token = uuid.uuid4().hex, secrets.token_urlsafe(32)
        wanted = now + self.lifetime
        try:
            if renewable:
                assert old is not None
                made = connector.renew(old, address, channel_id, token, wanted)
            else:
                made = connector.watch(address, channel_id, token, wanted)
        except PushRefused as exc:
            if old is not None:
                self._stop(name, connector, old)
            self.channels.refuse(name, kind, exc.reason, now=now,
                                 details={"asked_under": self._asked_under(account)})
            log.info("account %s: %s", name, describe(exc, account))
            return REFUSED_NOW
        except Exception as exc:  # unreachable, throttled, ...: the next cycle tries again
            if renewable:  # a renewal that keeps failing must not let the channel lapse
                self.channels.degrade(name, RENEWAL_FAILED)
            log.warning("account %s: its push channel could not be %s (tried again next "
                        "cycle): %s", name, "renewed" if renewable else "opened",
                        describe(exc, account))
            log.debug("push channel failure", exc_info=True)
            return FAILED
        problem = unusable(made, now)
        if problem is not None:  # the provider's answer cannot be kept: stop it
            log.warning("account %s: the provider's push channel is unusable (%s); tried "
                        "again next cycle", name, problem)
            if isinstance(made, Channel) and not (old is not None and made.id == old.id):
                self._stop(name, connector, made)
            if renewable:
                self.channels.degrade(name, RENEWAL_FAILED)
            return FAILED
        if renewable and old is not None and made.id == old.id:
            self.channels.extend(name, made.expires_at)
            return EXTENDED
        try:
            self.channels.save(name, kind, channel_id=made.id, token=token,
                               expires_at=made.expires_at,
                               resource_id=made.resource_id or None,
                               details=made.details, owner=self.owner, now=now)
        except Exception:
            # Unrecorded, the channel would notify with a token nobody can check until
            # it expires: stop it (the caller logs the failure; the next cycle retries).
            self._stop(name, connector, made)
            raise
        if old is not None and old.id != made.id and old.expires_at > now:
            self._stop(name, connector, old)
        return RENEWED if renewable else OPENED

    def _ask_again(self, account: AccountConfig, row: ChannelRow, now: datetime) -> bool:
        """Whether a refused account is due to be asked again."""
        if row.details.get("asked_under") != self._asked_under(account):
            return True
        return row.created_at is None or now - row.created_at >= self.refused_retry

    def _asked_under(self, account: AccountConfig) -> str:
        """A digest of what a refusal was given under: the account's config and where
        notifications would go (a change to either is worth asking again)."""
        auth = sorted((key, repr(value)) for key, value in account.auth.items())
        text = repr((self.settings.public_url, account.fingerprint(), auth))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    # --- liveness, from the daemon's tick ------------------------------------------------

    def missed(self, now: datetime | None = None) -> list[str]:
        """Mark degraded the channels whose expected notification is overdue; returns
        their accounts (the daemon polls them at their normal interval and soon)."""
        names = self.channels.overdue(now or self.clock())
        for name in names:
            self.channels.degrade(name, MISSED_NOTIFICATION)
            log.warning("account %s: no push notification came after syncd's own write; "
                        "the channel is presumed dead and is re-created at the next cycle "
                        "(polled until then)", name)
        return names

    def healthy(self, name: str) -> bool:
        """Whether the account's notifications are expected to come (long backstop);
        never with push off (a row an earlier run left is stopped by the next cycle)."""
        if self.settings.public_url is None:
            return False
        row = self.channels.get(name)
        return row is not None and row.healthy

    # --- accounts that go away -----------------------------------------------------------

    def forget(self, name: str, connector: object | None) -> None:
        """The account is no longer served here: stop its channel with ``connector`` (the
        one the service still has, if any) and remove its row. Never raises."""
        try:
            row = self.channels.get(name)
            old = _channel(row)
            if old is not None and isinstance(connector, Watchable):
                self._stop(name, connector, old)
            if row is not None:
                self.channels.remove(name)
        except Exception as exc:  # the row stays; the channel expires by itself
            log.warning("account %s: its push channel could not be removed: %s", name,
                        describe(exc))
            log.debug("push channel failure", exc_info=True)

    def prune(self, configured: Iterable[str], *, spare: tuple[str, ...] = ()) -> list[str]:
        """Remove the rows of accounts no longer configured (at start: their connectors
        cannot be made any more, so their channels just expire); returns their names.
        Accounts named with a prefix in ``spare`` are left alone (a team's members, which
        the CRM may not be able to list right now)."""
        keep = set(configured)
        try:
            gone = [row.account for row in self.channels.all()
                    if row.account not in keep and not row.account.startswith(spare)]
        except Exception as exc:  # the database is away: the cycles report it
            log.warning("could not read the push channels: %s", describe(exc))
            return []
        for name in gone:
            self.forget(name, None)
        if gone:
            log.info("removed the push channels of %d account(s) no longer configured: %s",
                     len(gone), ", ".join(gone))
        return gone

    @staticmethod
    def _stop(name: str, connector: Watchable, channel: Channel) -> None:
        """Stop a channel we no longer want; a failure only means it runs until it
        expires (its notifications then name an unknown channel and are ignored)."""
        try:
            connector.unwatch(channel)
        except Exception as exc:
            log.info("account %s: an old push channel could not be stopped (it expires by "
                     "itself): %s", name, describe(exc))
            log.debug("unwatch failure", exc_info=True)


def unusable(made: object, now: datetime) -> str | None:
    """Why a channel a connector returned cannot be kept (None: it can). Connectors
    parse what providers answer; this is the keeper's own check of what it stores."""
    if not isinstance(made, Channel):
        return "not a channel"
    if not isinstance(made.id, str) or not made.id or len(made.id) > MAX_CHANNEL_ID:
        return "its id is empty or too long"
    if not isinstance(made.expires_at, datetime) or made.expires_at.tzinfo is None:
        return "its expiry is not a UTC time"
    if made.expires_at <= now:
        return "it has already expired"
    if not isinstance(made.resource_id, str) or len(made.resource_id) > MAX_RESOURCE_ID:
        return "its resource is too long"
    try:
        size = len(json.dumps(dict(made.details)))
    except (TypeError, ValueError):
        return "its details cannot be stored"
    if size > MAX_DETAILS:
        return "its details are too large"
    return None


def _current(row: ChannelRow | None, now: datetime, backstop: timedelta) -> bool:
    """Whether the row is an active channel not yet due for renewal."""
    if row is None or row.state != ACTIVE or row.channel_id is None or row.expires_at is None:
        return False
    return row.expires_at - now > renewal_margin(row, backstop)


def _channel(row: ChannelRow | None) -> Channel | None:
    """The provider's channel a row describes (None: the row holds none)."""
    if row is None or row.channel_id is None or row.expires_at is None:
        return None
    return Channel(id=row.channel_id, expires_at=row.expires_at,
                   resource_id=row.resource_id or "", details=dict(row.details))

