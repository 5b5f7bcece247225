"""Echoes of Pipedrive's own calendar sync on the same calendar are neither imported nor
sent back, so two syncs of one calendar never copy each other's copies for ever."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

from connectors.base import RemoteEvent
from syncd.engine.actions import CreateActivity, CreateEvent, PairPlan
from syncd.engine.plan import PlanInput, plan_account
from syncd.model import Projection
from tests.engine.factories import activity, event, link, policy, proj

IMPORTING = policy(import_events=True, import_type="meeting")


def plans(**kwargs: object) -> list[PairPlan]:
    kwargs.setdefault("policy", IMPORTING)
    kwargs.setdefault("links", {})
    return plan_account(PlanInput(**kwargs))  # type: ignore[arg-type]


def unmarked(projection: Projection, event_id: str = "pd-1") -> RemoteEvent:
    return event(projection=projection, event_id=event_id, marker=None)


def test_an_unmarked_copy_of_a_paired_activity_is_not_imported() -> None:
    a = activity(1, subject="Call Ada")
    [plan] = plans(links={1: link(a)}, calendar=[unmarked(proj(a))])
    assert plan.skip == "echo" and plan.crm_write is None and plan.cal_write is None


def test_pipedrives_deal_person_organization_title_is_recognised() -> None:
    a = activity(1, subject="Call Ada")
    copy = replace(proj(a), title="Big deal > Ada Lovelace > Acme > Call Ada")
    [plan] = plans(links={1: link(a)}, calendar=[unmarked(copy)])
    assert plan.skip == "echo"


def test_an_unmarked_event_at_another_time_is_still_imported() -> None:
    a = activity(1, subject="Call Ada")
    other = proj(activity(1, subject="Call Ada", due_time=time(11, 0)))
    [plan] = plans(links={1: link(a)}, calendar=[unmarked(other)])
    assert isinstance(plan.crm_write, CreateActivity) and plan.skip is None


def test_a_new_activity_copying_a_paired_event_is_not_sent_to_the_calendar() -> None:
    a = activity(1, subject="Call Ada")
    copy = activity(2, subject="Call Ada", type="task")  # what the other sync made of it
    [plan] = plans(links={1: link(a)}, crm={2: copy})
    assert plan.skip == "echo" and plan.cal_write is None


def test_a_same_time_activity_linked_to_a_deal_or_person_is_no_echo() -> None:
    a = activity(1, subject="Call Ada")
    for twin in (activity(2, subject="Call Ada", deal_id=7),
                 activity(2, subject="Call Ada", person_id=8)):
        [plan] = plans(links={1: link(a)}, crm={2: twin})
        assert isinstance(plan.cal_write, CreateEvent), plan


def test_without_pairs_nothing_is_an_echo() -> None:
    a, b = activity(1, subject="Call Ada"), activity(2, subject="Call Ada")
    created = plans(crm={1: a, 2: b})
    assert [isinstance(p.cal_write, CreateEvent) for p in created] == [True, True]
