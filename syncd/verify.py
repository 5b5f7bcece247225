"""``syncd verify``: read every account's CRM, sync state and calendar, and audit them.

Read-only unless asked to repair: the calendar is listed in full through a read-only
connector (the same request path and budgets as a cycle's first listing), the CRM and the
state are only read, and nothing is cached or written. The judgement is
:func:`syncd.engine.audit.audit`; this module reads for it. With ``repair`` it

* deletes the events the duplicate and orphan findings name (never anything else);
* realigns drifted pairs (:func:`realign_drift`): the activity is the record, so the next
  cycle writes its values over the event's in the drifted fields;
* unpairs the activities a ``paired_twice`` finding names (:func:`unpair_shared`): the
  event stays paired with the activity whose marker it carries (else the one changed
  last), and each of the others is paired with the event carrying its own marker, or
  gets a new one from the next cycle;

and logs every removed event, every overwritten value and every dropped pair in
``repairs.jsonl`` in the data directory (0600), so that nothing a repair replaces is lost.

A repair is a writer like a cycle, so it runs under the account's lease
(:mod:`syncd.repair_lease`), taken before the audit it acts on is read: no cycle (the
daemon's, a replica's, ``syncd sync``'s) can change the pairs between the reading and the
repair, the fencing token is renewed and checked before each delete batch and on every
state write, the deletions are recorded in the write log as a cycle records its own,
and the lease goes back with the account's due time unchanged. An account whose lease a
live holder has is audited read-only and left unrepaired (``held``).

``foreign_touched`` has no repair: the write log holds the event id, the etag our write
left and when, not what the event held before, so there is nothing to restore from; and
a connector's update always writes syncd's marker, which would make the event ours. The
finding says whether the event still holds what syncd left, for the owner to check it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import CalendarConnector, DeleteOp, RemoteEvent
from syncd.config import AccountConfig
from syncd.crm.source import CrmSource, NoteReader
from syncd.engine.audit import AuditInput, Finding, audit
from syncd.engine.policy import AccountPolicy
from syncd.errors import LeaseLost
from syncd.model import Activity
from syncd.repair_lease import LeaseHeld, RepairLease, take_lease
from syncd.report import describe
from syncd.service import Service
from syncd.store.state import StateStore

log = logging.getLogger("syncd.verify")
REPAIR_LOG = "repairs.jsonl"


@dataclass
class AccountAudit:
    """One account's audit: its findings and what was read, or why it could not be read."""

    account: str
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    pairs: int = 0
    activities: int = 0
    privacy_checked: bool = False
    error: str | None = None  # a sentence: the account could not be read
    removed: list[str] = field(default_factory=list)  # event ids a repair deleted
    realigned: list[int] = field(default_factory=list)  # activity ids whose drift a repair fixed
    unpaired: list[int] = field(default_factory=list)  # activity ids a repair unpaired
    held: LeaseHeld | None = None  # a repair found the account's lease held: nothing done
    lease_lost: bool = False  # another holder took the lease mid-repair: the rest not done
    repair_error: str | None = None  # a sentence: the repair failed midway (the rest undone)

    @property
    def clean(self) -> bool:
        return self.error is None and self.repair_error is None and not self.findings

    @property
    def busy(self) -> bool:
        """Something to repair was left alone: the lease was another's, or was lost."""
        return self.held is not None or self.lease_lost


def repairable(findings: Sequence[Finding]) -> bool:
    """Whether ``--repair`` has something to do for these findings."""
    return any(f.remove or f.unpair or f.kind == "drift" for f in findings)


def audit_calendar(account: AccountConfig, source: CrmSource, state: StateStore,
                   connector: CalendarConnector, policy: AccountPolicy, now: datetime
                   ) -> tuple[AccountAudit, list[RemoteEvent]]:
    """Read one account through ``connector`` (read-only use) and judge it; the events
    read come back for a repair. Raises what reading raises."""
    result = AccountAudit(account.name)
    owner = source.user(account.owner)
    if owner is None:
        result.error = f"the CRM has no user {account.owner}"
        return result, []
    window = policy.window(now)
    events = list(connector.changes(None).events)
    links = state.links(account.name)
    activities: dict[int, Activity] = {
        a.id: a for a in source.due_between(owner.id, window.start.date(), window.end.date())}
    paired = {link.sync_uid for link in links.values()}
    markers: dict[str, Activity | None] = {
        e.marker: source.find(e.marker) for e in events if e.marker and e.marker not in paired}
    activities.update(source.get_many([i for i in links if i not in activities]))
    for found in markers.values():
        if found is not None:
            activities.setdefault(found.id, found)
    notes = source.notes(sorted(activities)) if isinstance(source, NoteReader) else None
    left = state.last_written(account.name)
    result.privacy_checked = notes is not None
    result.findings = audit(AuditInput(
        owner_id=owner.id, links=links, events=events, activities=activities,
        markers=markers, notes=notes, quarantined=state.quarantined(account.name),
        carried=connector.capabilities.fields, done_style=policy.done_style, window=window,
        written=frozenset(left), left=left, kept=frozenset(
            str(c["event_id"]) for c in state.conflicts(account.name)
            if c["field"] == "event" and c["policy"] == "guest_mail")))
    result.events, result.pairs, result.activities = len(events), len(links), len(activities)
    return result, events


def read_audit(service: Service, account: AccountConfig, now: datetime | None = None
               ) -> tuple[AccountAudit, list[RemoteEvent]]:
    """One account of the service, audited; a failure to read is the account's error."""
    now = now or datetime.now(UTC)
    connector: CalendarConnector | None = None
    try:
        connector = service.open_connector(account, read_only=True, now=now)
        return audit_calendar(account, service.source, service.state, connector,
                              service.policy(account), now)
    except Exception as exc:  # one account's failure is its line; the others go on
        log.debug("verify %s failed", account.name, exc_info=True)
        return AccountAudit(account.name, error=describe(exc, account)), []
    finally:
        if connector is not None:
            connector.close()


def verify(service: Service, names: Sequence[str] | None = None, *, repair: bool = False,
           now: datetime | None = None, wait: float = 0.0) -> list[AccountAudit]:
    """Audit the accounts (all, or ``names``); with ``repair``, delete what duplicate and
    orphan findings name, realign drift and unpair what ``paired_twice`` names, under
    the account's lease (waited for up to ``wait`` seconds while a cycle holds it), then
    audit again so the result shows what is left. An account that cannot be read
    (``error``) or repaired (``repair_error``) is its own result, its lease given back,
    and the next account goes on; only an interrupt (not an ``Exception``) stops here."""
    audits = []
    for account in service.accounts():
        if names and account.name not in names:
            continue
        audits.append(_repair_account(service, account, now, wait) if repair
                      else read_audit(service, account, now)[0])
    return audits


def _repair_account(service: Service, account: AccountConfig, now: datetime | None,
                    wait: float) -> AccountAudit:
    """One account audited and repaired under its lease, then audited again."""
    # (a short lease its heartbeat renews: a repair killed outright holds the account
    # for seconds, not a cycle's lease_seconds)
    lease = take_lease(service.state, account.name, service.replica, wait=wait)
    if isinstance(lease, LeaseHeld):
        result, _ = read_audit(service, account, now)
        if result.error is None and repairable(result.findings):
            result.held = lease
        return result
    removed: list[str] = []
    realigned: list[int] = []
    unpaired: list[int] = []
    lost = False
    failed: str | None = None
    try:
        result, events = read_audit(service, account, now)
        if result.error is not None or not repairable(result.findings):
            return result
        log_dir = service.config.data_path
        try:
            _repair(service, account, result.findings, events, lease, removed)
            lease.fence()  # (the pairs' writes below are each fenced by the token too)
            realigned = realign_drift(service.state, account.name, result.findings, events,
                                      token=lease.token, log_dir=log_dir)
            unpaired = unpair_shared(service.state, account.name, result.findings, events,
                                     token=lease.token, log_dir=log_dir)
        except LeaseLost:
            log.warning("verify --repair: %s: another holder took the account's lease; "
                        "the rest of its repair is left", account.name)
            lost = True
        except Exception as exc:  # one account's failure is its line; the others go on
            # (a refused sign-in, a 5xx or throttling that outlasted the retries, an
            # answer that is not one: what was done is kept and listed, the rest waits)
            log.debug("verify --repair %s failed", account.name, exc_info=True)
            failed = describe(exc, account)
    finally:
        lease.release()
    result, _ = read_audit(service, account, now)
    result.removed, result.realigned, result.unpaired = removed, realigned, unpaired
    result.lease_lost, result.repair_error = lost, failed
    return result


def realign_drift(state: StateStore, account: str, findings: Sequence[Finding],
                  events: Sequence[RemoteEvent], *, token: int, log_dir: Path | None
                  ) -> list[int]:
    """Make the next cycle write the activity's values over a drifted event.

    A drifted pair has both sides equal to what syncd last recorded for each, yet the two
    differ: the recorded bases disagree. The pair's CRM base takes the event's values in
    the drifted fields, so the next cycle sees those fields changed in the CRM only and
    writes them to the event (no conflict: the calendar side is unchanged). The event's
    values are logged first. Done under the account's lease (``token``: each pair's write
    is fenced, LeaseLost once another holder took it), and only for pairs whose event is
    still the version the audit read; returns the activity ids realigned.
    """
    drifted = [f for f in findings if f.kind == "drift" and f.activity_id is not None]
    if not drifted:
        return []
    realigned: list[int] = []
    links = state.links(account)
    by_id = {e.event_id: e for e in events}
    for finding in drifted:
        assert finding.activity_id is not None
        link = links.get(finding.activity_id)
        event = by_id.get(finding.event_ids[0]) if finding.event_ids else None
        if link is None or link.crm_base is None or event is None \
                or event.projection is None or (link.event_id, link.etag) != (
                    event.event_id, event.etag):
            continue  # changed since the audit read it: the next cycle judges it
        theirs = {name: event.projection.get(name) for name in finding.fields}
        if log_dir is not None:
            _log(log_dir, {"account": account, "realigned": finding.activity_id,
                           "event_id": event.event_id,
                           "overwritten": event.projection.replace(theirs).to_json(),
                           "fields": list(finding.fields)})
        state.save_link(account, replace(link, crm_base=link.crm_base.replace(theirs)),
                        token)
        realigned.append(finding.activity_id)
    return realigned


def unpair_shared(state: StateStore, account: str, findings: Sequence[Finding],
                  events: Sequence[RemoteEvent], *, token: int, log_dir: Path | None
                  ) -> list[int]:
    """Give each activity a ``paired_twice`` finding unpairs its own event again.

    The shared event stays paired with the activity whose marker it carries (else the one
    changed last: the finding's ``activity_id``). Each other pair is logged, then pointed
    at the event that carries its own marker (the newest, if the calendar has one: the
    pair takes that event as it is now), or else made a pending create, so the next
    cycle looks its marker up and creates its event. No event is written or deleted
    here. Done under the account's lease (``token``: each pair's write is fenced,
    LeaseLost once another holder took it), and only for pairs that still point at the
    shared event; returns the activity ids repaired.
    """
    shared = [f for f in findings if f.kind == "paired_twice" and f.unpair]
    if not shared:
        return []
    unpaired: list[int] = []
    links = state.links(account)
    for finding in shared:
        for activity_id in finding.unpair:
            link = links.get(activity_id)
            if link is None or link.event_id != finding.event_ids[0]:
                continue  # changed since the audit read it
            own = max((e for e in events if e.marker == link.sync_uid and not e.deleted
                       and e.event_id != link.event_id and e.projection is not None),
                      key=lambda e: (e.updated or datetime.min.replace(tzinfo=UTC),
                                     e.event_id), default=None)
            if own is not None:
                repaired = replace(link, event_id=own.event_id, etag=own.etag,
                                   cal_base=own.projection)
            else:
                repaired = replace(link, event_id=None, etag=None, pending=True,
                                   generation=link.generation + 1)
            if log_dir is not None:
                _log(log_dir, {
                    "account": account, "unpaired": activity_id,
                    "event_id": link.event_id, "kept_with": finding.activity_id,
                    "now_paired_with": repaired.event_id, "sync_uid": link.sync_uid,
                    "etag": link.etag, "generation": link.generation,
                    "cal_base": link.cal_base.to_json() if link.cal_base else None})
            state.save_link(account, repaired, token)
            unpaired.append(activity_id)
    return unpaired


def _repair(service: Service, account: AccountConfig, findings: Sequence[Finding],
            events: Sequence[RemoteEvent], lease: RepairLease, removed: list[str]) -> None:
    """Delete the events the findings name (conditional on their etag), a batch at a time
    under ``lease`` (fenced before each batch, as a cycle's writes), logging each in
    ``repairs.jsonl`` and recording the batch in the write log; the ids deleted are
    appended to ``removed`` as they go (so a lease lost midway keeps what was done)."""
    by_id = {e.event_id: e for e in events}
    doomed = [by_id[i] for f in findings for i in f.remove if i in by_id]
    if not doomed:
        return
    connector = service.open_connector(account, read_only=False)
    try:
        batch = max(1, connector.capabilities.max_batch)
        for start in range(0, len(doomed), batch):
            chunk = doomed[start:start + batch]
            lease.fence()
            results = connector.write([DeleteOp(key=f"repair:{e.event_id}", event_id=e.event_id,
                                                etag=e.etag) for e in chunk])
            done = []
            for event, outcome in zip(chunk, results, strict=True):
                if outcome.error is None:
                    done.append(event.event_id)
                    _record(service.config.data_path, account.name, event)
                else:
                    log.warning("verify --repair: %s kept %s: %s", account.name,
                                event.event_id, describe(outcome.error))
            removed.extend(done)
            if done:  # as a cycle logs its deletions (verify's foreign_touched reads it)
                service.state.record(account.name, writes=[(i, None, "delete") for i in done],
                                     token=lease.token)
    finally:
        connector.close()


def _record(data_path: Path, account: str, event: RemoteEvent) -> None:
    """One line per removed event: enough to recreate it by hand (no note: events never
    hold one)."""
    _log(data_path, {
        "account": account, "event_id": event.event_id, "marker": event.marker,
        "etag": event.etag,
        "event": event.projection.to_json() if event.projection is not None else None})


def _log(data_path: Path, entry: dict[str, Any]) -> None:
    """Append one repair to ``repairs.jsonl`` (created 0600)."""
    line = {"at": datetime.now(UTC).isoformat(), **entry}
    path = data_path / REPAIR_LOG
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
