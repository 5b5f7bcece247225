"""/hooks/pipedrive over real HTTP: who may call, what a delivery flags, what is counted."""

from __future__ import annotations

import base64
import json
import socket

import requests

from syncd.http.basic_auth import USER
from tests.http.conftest import Running, delivery


def test_a_delivery_flags_every_account_of_the_activitys_owner_and_nothing_else(
        running: Running) -> None:
    answer = running.deliver(running.users["alice"])
    assert answer.status_code == 200
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == {"alice-cal", "alice-work"}
    assert running.woken == [{"alice-cal", "alice-work"}]
    assert running.receiver.pipedrive.counts["accepted"] == 1


def test_a_deleted_activity_flags_its_owner_from_previous(running: Running) -> None:
    assert running.deliver(running.users["bob"], action="delete").status_code == 200
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == {"bob-cal"}


def test_forged_deliveries_are_refused_with_401_counted_and_flag_nothing(
        running: Running) -> None:
    body = json.dumps(delivery(running.users["alice"]))
    wrong = requests.post(running.hook, data=body, auth=(USER, "guessed"), timeout=10)
    other_user = requests.post(running.hook, data=body, auth=("admin", "x"), timeout=10)
    bare = requests.post(running.hook, data=body, timeout=10)
    bearer = requests.post(running.hook, data=body, timeout=10,
                           headers={"Authorization": "Bearer abc"})
    garbage = requests.post(running.hook, data=body, timeout=10,
                            headers={"Authorization": "Basic !!!not-base64"})
    answers = [wrong, other_user, bare, bearer, garbage]
    assert [a.status_code for a in answers] == [401] * 5
    assert all(a.headers["WWW-Authenticate"].startswith("Basic") for a in answers)
    assert running.receiver.pipedrive.counts["refused"] == 5
    assert running.receiver.pipedrive.counts["accepted"] == 0
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set() and running.woken == []


def test_a_new_install_replaces_the_secret_and_the_old_one_is_refused(
        running: Running) -> None:
    old = running.secret.read()
    assert old is not None
    running.secret.create()
    assert running.deliver(running.users["alice"], auth=old).status_code == 401
    assert running.deliver(running.users["alice"]).status_code == 200


def test_a_retried_delivery_with_the_same_meta_id_is_one_hint(running: Running) -> None:
    first = running.deliver(running.users["alice"], event_id="evt-1")
    assert running.receiver.hints.settle()
    running.dirty.take("alice-cal")
    running.dirty.take("alice-work")
    again = [running.deliver(running.users["alice"], event_id="evt-1") for _ in range(3)]
    assert first.status_code == 200 and [a.status_code for a in again] == [200] * 3
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set()
    assert running.receiver.pipedrive.counts["duplicate"] == 3
    assert running.receiver.pipedrive.counts["accepted"] == 1


def test_a_body_over_the_cap_is_refused_with_413_before_it_is_read(running: Running) -> None:
    found = running.secret.read()
    assert found is not None
    padded = delivery(running.users["alice"])
    padded["previous"]["subject"] = "x" * 5000  # the listener's cap is 4096 bytes
    answer = requests.post(running.hook, data=json.dumps(padded), auth=found, timeout=10)
    assert answer.status_code == 413
    # Announced as 10 MB, nothing sent: refused from the headers alone.
    token = base64.b64encode(f"{found[0]}:{found[1]}".encode()).decode()
    host, port = running.receiver.server.host, running.receiver.server.port
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(f"POST /hooks/pipedrive HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Basic {token}\r\nContent-Length: 10000000\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 413")
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set()


def test_a_user_without_an_account_is_ignored_and_counted(running: Running) -> None:
    assert running.deliver(running.users["carol"]).status_code == 200
    assert running.deliver(999_999).status_code == 200  # not a user at all
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set() and running.woken == []
    assert running.receiver.hints.counts["unknown_user"] == 2


def test_what_is_not_an_activity_delivery_flags_nothing(running: Running) -> None:
    found = running.secret.read()
    assert found is not None
    deal = running.deliver(running.users["alice"], entity="deal")
    not_json = requests.post(running.hook, data=b"{nope", auth=found, timeout=10)
    no_meta = requests.post(running.hook, data=b'{"data": {"owner_id": 1}}', auth=found,
                            timeout=10)
    deep = requests.post(running.hook, data=b"[" * 2000 + b"]" * 2000, auth=found, timeout=10)
    assert [deal.status_code, not_json.status_code, no_meta.status_code,
            deep.status_code] == [200, 400, 400, 400]
    counts = running.receiver.pipedrive.counts
    assert counts["ignored"] == 1 and counts["malformed"] == 3
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set()


def test_other_paths_and_methods_are_not_served(running: Running) -> None:
    base = running.receiver.url
    assert requests.post(base + "/hooks/nothing", timeout=10).status_code == 404
    assert requests.get(base + "/", timeout=10).status_code == 404
    wrong_method = requests.get(running.hook, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
