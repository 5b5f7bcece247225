"""The soak's oracle judges an end state from the driver's writes alone: each broken
promise it must catch is planted here and seen counted (and a faithful end state passes)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.soak_mail import Cycle, MailFindings, judge_mail
from bench.soak_model import CALENDAR, CRM, CrmItem, EventSeen, Model, NoteIndex, judge, tag_of
from syncd_testkit.emulators.recording import MailRecord

WHEN = {"start": "2027-01-10T08:00:00+00:00", "end": "2027-01-10T08:30:00+00:00",
        "tz": "Europe/Oslo"}
OWNER = "u000@soak.example"
FIELDS = frozenset({"title", "when", "busy", "description", "location"})


def projection(title: str = "", **values: Any) -> dict[str, Any]:
    return {"title": title, "when": WHEN, "busy": False, "description": "", "location": "",
            "guests": [], **values}


def world(title: str = f"{tag_of(1)} Visit") -> Model:
    model = Model()
    model.created(1, OWNER, "private canary 0123456789abcdef", projection(title))
    return model


def event(title: str, raw: str = "", marker: str = "m1", **values: Any) -> EventSeen:
    return EventSeen(OWNER, f"ev-{title}", marker, projection(title, **values), raw or title)


def crm(title: str, **values: Any) -> dict[int, CrmItem]:
    return {1: CrmItem(True, OWNER, False, projection(title, **values))}


def test_an_end_state_that_keeps_every_last_write_is_clean() -> None:
    model = world()
    model.wrote(1, CALENDAR, "title", f"{tag_of(1)} from the phone")
    findings = judge(model, crm(f"{tag_of(1)} from the phone"),
                     [event(f"{tag_of(1)} from the phone")], [], {10: 1}, FIELDS)
    assert findings.clean, findings.details


def test_a_later_edit_that_lost_without_a_conflict_is_a_lost_edit() -> None:
    model = world()
    model.wrote(1, CRM, "location", "crm room")
    model.wrote(1, CALENDAR, "location", "calendar room")  # later: it should win or conflict
    findings = judge(model, crm(f"{tag_of(1)} Visit", location="crm room"),
                     [event(f"{tag_of(1)} Visit", location="crm room")], [], {10: 1}, FIELDS)
    assert findings.lost_edits == 1


def test_the_same_loss_recorded_as_a_conflict_is_not_a_lost_edit() -> None:
    model = world()
    model.wrote(1, CRM, "location", "crm room")
    model.wrote(1, CALENDAR, "location", "calendar room")
    conflict = {"activity_id": 10, "field": "location", "crm_value": "crm room",
                "calendar_value": "calendar room"}
    findings = judge(model, crm(f"{tag_of(1)} Visit", location="crm room"),
                     [event(f"{tag_of(1)} Visit", location="crm room")], [conflict], {10: 1},
                     FIELDS)
    assert findings.clean, findings.details


def test_a_value_nobody_wrote_and_sides_that_differ_are_lost_edits() -> None:
    model = world()
    findings = judge(model, crm(f"{tag_of(1)} Visit"),
                     [event(f"{tag_of(1)} Visit", busy=True)], [], {10: 1}, FIELDS)
    assert findings.lost_edits == 1
    model.wrote(1, CALENDAR, "title", f"{tag_of(1)} new")
    findings = judge(model, crm(f"{tag_of(1)} Visit"), [event(f"{tag_of(1)} new")], [],
                     {10: 1}, FIELDS)
    assert findings.lost_edits == 1


def test_duplicates_deletions_orphans_and_leaks_are_counted() -> None:
    title = f"{tag_of(1)} Visit"
    twice = judge(world(), crm(title), [event(title), event(title, marker="m1")], [], {}, FIELDS)
    assert twice.duplicates >= 1
    gone = judge(world(), crm(title), [], [], {}, FIELDS)
    assert gone.unexpected_deletions == 1
    model = world()
    model.deleted(1, CRM)
    orphan = judge(model, {1: CrmItem(False)}, [event(title)], [], {}, FIELDS)
    assert orphan.orphans == 1
    leak = judge(world(), crm(title),
                 [event(title, raw="notes: Private Canary 0123456789ABCDEF")], [], {}, FIELDS)
    assert leak.leaks == 1


def test_an_event_left_in_the_old_owners_calendar_is_misplaced() -> None:
    model = world()
    model.moved(1, "u001@soak.example")
    title = f"{tag_of(1)} Visit"
    findings = judge(model, {1: CrmItem(True, "u001@soak.example", False, projection(title))},
                     [event(title)], [], {}, FIELDS)
    assert findings.misplaced == 1


def test_every_guest_email_counts_when_no_account_invites() -> None:
    title = f"{tag_of(1)} Visit"
    findings = judge(world(), crm(title), [event(title)], [], {}, FIELDS,
                     {"guest@customer.example": 2})
    assert findings.excess_emails == 2


def test_what_was_written_to_an_event_the_user_then_deleted_is_not_a_lost_edit() -> None:
    # The long Google run's one finding: a conflict, then the event deleted in the same
    # round; the CRM's edit brought the item back, without the deleted event's title.
    model = world()
    model.wrote(1, CRM, "title", f"{tag_of(1)} crm")
    model.wrote(1, CALENDAR, "title", f"{tag_of(1)} calendar")
    model.deleted(1, CALENDAR)
    title = f"{tag_of(1)} crm"
    findings = judge(model, crm(title), [event(title)], [], {10: 1}, FIELDS)
    assert findings.clean, findings.details


def test_a_note_is_found_anywhere_in_an_event_among_many_notes() -> None:
    model = Model()
    for i in range(1, 2001):
        model.created(i, OWNER, f"private canary {i:016x} of {tag_of(i)}",
                      projection(f"{tag_of(i)} Visit"))
    model.items[7].note = "two words"  # no inner word: searched for everywhere
    title = f"{tag_of(1)} Visit"
    pasted = f'{{"description": "call back. Private Canary {1234:016X} of {tag_of(1234)}"}}'
    findings = judge(model, crm(title), [event(title, raw=pasted),
                                         event(title, raw="notes: two words.", marker="m2")],
                     [], {}, FIELDS)
    assert findings.leaks == 2
    assert any(tag_of(1234) in d for d in findings.details)


def test_each_event_is_searched_only_for_the_notes_that_share_its_words() -> None:
    model = Model()
    for i in range(1, 2001):
        model.created(i, OWNER, f"private canary {i:016x} of {tag_of(i)}",
                      projection(f"{tag_of(i)} Visit"))
    index = NoteIndex(model.items.values())
    text = f"private canary {5:016x} of {tag_of(5)} and canary {9:016x}".casefold()
    assert [item.index for item, _ in index.candidates(text)] == [5, 9]
    assert index.candidates("nothing of the sort") == []


# ---- the e-mail oracle (bench.soak_mail, ``--invite``) -----------------------------------

GUEST, OTHER = "ada@customer.example", "eve@customer.example"
NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)
TITLE = f"{tag_of(1)} Visit"


class MailRun:
    """A scripted run: the driver's actions on ``model``, cycles, and the provider's log."""

    def __init__(self, **values: Any) -> None:
        self.model = Model()
        self.model.created(1, OWNER, "", projection(**{"title": TITLE, "guests": [GUEST],
                                                        **values}))
        self.mails: list[MailRecord] = []
        self.cycles: list[Cycle] = []
        self.cycle(initial=True)  # the first sync: guests described, nobody mailed

    def cycle(self, *sent: tuple[str, str], killed: bool = False, initial: bool = False,
              event: str = "ev1") -> None:
        """One cycle that sent ``(kind, recipient)`` e-mails about item 1."""
        self.cycles.append(Cycle(self.model.seq, len(self.mails),
                                 frozenset() if killed else frozenset({OWNER}), initial))
        self.mails += [MailRecord(kind, who, event, TITLE, OWNER) for kind, who in sent]

    def judge(self, **values: Any) -> MailFindings:
        values = {"title": TITLE, "guests": [GUEST], **values}
        end = {1: CrmItem(True, OWNER, False, projection(**values))}
        return judge_mail(self.model, self.cycles, self.mails, end, NOW)


def test_an_invitation_after_a_crm_change_and_nothing_more_is_what_the_table_says() -> None:
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST))
    run.cycle()
    found = run.judge(location="Room 4")
    assert found.clean, found.details
    assert (found.expected, found.sent) == (1, 1)


def test_a_second_invitation_after_a_kill_is_a_duplicate() -> None:
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST), killed=True)  # the create's answer never came back
    run.cycle(("invite", GUEST), event="ev2")  # and a second event invited the guest again
    found = run.judge(location="Room 4")
    assert found.unexpected == Counter(duplicate_invitation=1), found.details


def test_an_update_written_again_after_a_lost_answer_is_within_the_bound() -> None:
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST))
    run.model.wrote(1, CRM, "title", f"{TITLE} v2")
    run.cycle(("update", GUEST), killed=True)
    run.cycle(("update", GUEST))
    found = run.judge(location="Room 4", title=f"{TITLE} v2")
    assert found.clean, found.details


def test_a_mail_to_somebody_who_was_never_a_guest_is_counted() -> None:
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST), ("invite", OTHER))
    found = run.judge(location="Room 4")
    assert found.unexpected == Counter(not_guest=1), found.details


def test_a_mail_about_a_past_meeting_is_counted() -> None:
    run = MailRun(when={"start": "2026-12-01T08:00:00+00:00",
                        "end": "2026-12-01T09:00:00+00:00", "tz": "Europe/Oslo"})
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST))
    found = run.judge(location="Room 4")
    assert found.unexpected == Counter(past=1), found.details
    assert found.missing == Counter()  # and nothing is owed for the past


def test_mail_for_a_calendar_side_edit_or_a_change_already_sent_is_uncaused() -> None:
    run = MailRun()
    run.cycle(("invite", GUEST))  # the first sync's guests are described, not invited
    run.model.wrote(1, CALENDAR, "title", f"{TITLE} from the phone")
    run.cycle(("update", GUEST))
    found = run.judge()
    assert found.unexpected == Counter(uncaused=2), found.details


def test_an_owed_invitation_or_cancellation_that_never_went_out_is_missing() -> None:
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle()
    assert run.judge(location="Room 4").missing == Counter(invitation=1)
    run = MailRun()
    run.model.wrote(1, CRM, "location", "Room 4")
    run.cycle(("invite", GUEST))
    run.model.wrote(1, CRM, "guests", [])
    run.cycle()
    found = run.judge(location="Room 4", guests=[])
    assert found.missing == Counter(cancellation=1), found.details


def test_the_links_back_to_pipedrive_in_an_event_are_nobodys_write() -> None:
    # Pipedrive keeps the public text; syncd shows it with links to the linked records.
    model = world()
    model.wrote(1, CALENDAR, "description", "agenda from the phone")
    title = f"{tag_of(1)} Visit"
    links = "\n\nPipedrive person: https://acme.pipedrive.com/person/12"
    findings = judge(model, crm(title, description="agenda from the phone"),
                     [event(title, description="agenda from the phone" + links)], [],
                     {10: 1}, FIELDS)
    assert findings.clean, findings.details
    lost = judge(model, crm(title, description="agenda"),
                 [event(title, description="agenda" + links)], [], {10: 1}, FIELDS)
    assert lost.lost_edits == 1


def test_an_edit_copied_across_before_the_user_deleted_the_event_is_not_a_lost_edit() -> None:
    # The Pipedrive soak's finding: a calendar title reached the CRM; rounds later the CRM
    # edited the description and the user deleted the event; the CRM's edit won.
    model = world()
    model.wrote(1, CALENDAR, "title", f"{tag_of(1)} from the phone")
    model.wrote(1, CRM, "description", "crm agenda")
    model.deleted(1, CALENDAR)
    title = f"{tag_of(1)} from the phone"
    findings = judge(model, crm(title, description="crm agenda"),
                     [event(title, description="crm agenda")], [], {10: 1}, FIELDS)
    assert findings.clean, findings.details
    nobody = judge(model, crm(f"{tag_of(1)} nobody", description="crm agenda"),
                   [event(f"{tag_of(1)} nobody", description="crm agenda")], [], {10: 1},
                   FIELDS)
    assert nobody.lost_edits == 1


def imports() -> Model:
    """Item 1 made in an importing calendar, item 2 in one that does not import."""
    model = Model()
    model.created(1, OWNER, "", projection(f"{tag_of(1)} call"), side=CALENDAR, event_id="e1")
    model.created(2, OWNER, "", projection(f"{tag_of(2)} call"), side=CALENDAR, foreign=True,
                  event_id="e2")
    return model


def seen(title: str, event_id: str, marker: str | None) -> EventSeen:
    return EventSeen(OWNER, event_id, marker, projection(title), title)


def test_an_event_imported_once_and_one_left_alone_is_clean() -> None:
    findings = judge(imports(), crm(f"{tag_of(1)} call"),
                     [seen(f"{tag_of(1)} call", "e1", "m1"), seen(f"{tag_of(2)} call", "e2", None)],
                     [], {10: 1}, FIELDS, tagged={tag_of(1): [10]})
    assert findings.clean, findings.details


def test_two_activities_for_one_event_are_a_duplicate_and_a_lost_import_a_deletion() -> None:
    events = [seen(f"{tag_of(1)} call", "e1", "m1"), seen(f"{tag_of(2)} call", "e2", None)]
    twice = judge(imports(), crm(f"{tag_of(1)} call"), events, [], {10: 1}, FIELDS,
                  tagged={tag_of(1): [10, 11]})
    assert twice.duplicates == 1, twice.details
    never = judge(imports(), {}, events, [], {}, FIELDS, tagged={})
    assert never.unexpected_deletions == 1, never.details


def test_an_activity_or_a_marker_for_an_event_not_to_import_is_a_wrong_import() -> None:
    events = [seen(f"{tag_of(1)} call", "e1", "m1"), seen(f"{tag_of(2)} call", "e2", "m2")]
    findings = judge(imports(), crm(f"{tag_of(1)} call"), events, [], {10: 1}, FIELDS,
                     tagged={tag_of(1): [10], tag_of(2): [12]})
    assert findings.wrong_imports == 2, findings.details


def test_an_event_not_to_import_that_syncd_changed_or_removed_is_counted() -> None:
    model = imports()
    changed = EventSeen(OWNER, "e2", None, projection(f"{tag_of(2)} call", location="x"), "")
    findings = judge(model, crm(f"{tag_of(1)} call"), [seen(f"{tag_of(1)} call", "e1", "m1"),
                     changed], [], {10: 1}, FIELDS, tagged={tag_of(1): [10]})
    assert findings.lost_edits == 1, findings.details
    gone = judge(model, crm(f"{tag_of(1)} call"), [seen(f"{tag_of(1)} call", "e1", "m1")], [],
                 {10: 1}, FIELDS, tagged={tag_of(1): [10]})
    assert gone.unexpected_deletions == 1, gone.details


def test_an_earlier_calendar_value_left_when_the_last_one_lost_as_a_conflict_is_no_loss() -> None:
    model = world()
    model.wrote(1, CALENDAR, "location", "first room")  # copied to the CRM by a cycle
    model.wrote(1, CALENDAR, "location", "second room")  # lost as the activity moved away
    conflict = {"activity_id": 10, "field": "location", "crm_value": None,
                "calendar_value": "second room"}
    held = crm(f"{tag_of(1)} Visit", location="first room")
    events = [event(f"{tag_of(1)} Visit", location="first room")]
    assert judge(model, held, events, [conflict], {10: 1}, FIELDS).clean
    assert judge(model, held, events, [], {10: 1}, FIELDS).lost_edits == 1
