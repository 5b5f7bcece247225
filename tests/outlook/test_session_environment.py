"""An Outlook connector's session reads the environment's proxy settings once per host
(requests alone read them for every request: a sixth of an idle cycle's Python calls)."""

from __future__ import annotations

from tests.outlook.conftest import Env


def test_idle_cycles_read_the_proxy_environment_once_per_host(
        env: Env, environ_reads: list[str]) -> None:
    connector = env.connector(env.account())
    cursor = connector.changes(None).cursor
    for _ in range(3):
        cursor = connector.changes(cursor).cursor
    graph = [r for r in env.graph.requests if r.mailbox]
    assert len(graph) >= 4  # a request a cycle at least
    # Graph's host and the identity platform's (tenant discovery, the token), once each
    assert len(environ_reads) == 2
