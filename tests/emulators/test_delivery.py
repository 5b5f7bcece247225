"""The delivery threads and the POST the push emulators share (Google channels, Graph
subscriptions, Pipedrive webhooks): work is taken under the emulator's lock and posted
without it, a test can wait until nothing is due or being posted, and a redirect is an
answer unless the emulator follows it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from syncd_testkit.emulators.delivery import DeliveryThreads, post
from syncd_testkit.loopback import HandlerServer, QuietHandler, free_port


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A receiver: /ok answers 204, /moved redirects to /ok, /broken answers 500."""
    seen: list[str] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.read_body()
            seen.append(f"{self.command} {self.path}")
            if self.path == "/moved":
                self.reply(302, headers={"Location": "/ok"})
            else:
                self.reply(204 if self.path == "/ok" else 500)

        do_GET = do_POST

    with HandlerServer(Handler) as server:
        yield server.origin, seen


def test_a_post_gives_the_answers_status_and_follows_a_redirect_only_when_asked(
        receiver: tuple[str, list[str]]) -> None:
    origin, seen = receiver
    assert post(f"{origin}/ok", b"{}", {}, 5) == 204
    assert post(f"{origin}/broken", b"{}", {}, 5) == 500
    assert post(f"{origin}/moved", b"{}", {}, 5) == 302
    assert seen == ["POST /ok", "POST /broken", "POST /moved"]
    # followed as urllib does (a 302 to a POST becomes a GET)
    assert post(f"{origin}/moved", b"{}", {}, 5, follow_redirects=True) == 204
    assert seen[-2:] == ["POST /moved", "GET /ok"]
    assert post(f"http://127.0.0.1:{free_port()}/ok", b"", {}, 5) is None  # nobody there


def test_work_is_taken_under_the_lock_and_sent_without_it_and_idle_waits_for_it() -> None:
    cond = threading.Condition()
    queue = list(range(6))
    sent: list[int] = []
    release = threading.Event()
    held_while_sending: list[bool] = []

    def take() -> int | None:
        assert cond._is_owned()  # type: ignore[attr-defined]
        return queue.pop(0) if queue else None

    def send(item: int) -> None:
        held_while_sending.append(cond._is_owned())  # type: ignore[attr-defined]
        release.wait(10)
        with cond:
            sent.append(item)

    threads = DeliveryThreads(cond, name="test-delivery", take=take, send=send,
                              pause=lambda: None)
    threads.start(workers=2)
    try:
        # Two workers hold two items; nothing is idle until they are sent.
        assert not threads.wait_idle(lambda: not queue, timeout=0.3)
        with cond:
            assert threads.busy == 2
        release.set()
        assert threads.wait_idle(lambda: not queue, timeout=10)
    finally:
        threads.stop(join_timeout=5)
    assert sorted(sent) == list(range(6)) and held_while_sending == [False] * 6
    with cond:
        queue.append(99)
        cond.notify_all()
    assert not threads.wait_idle(lambda: not queue, timeout=0.2)  # stopped: nothing sends
