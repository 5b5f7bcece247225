"""Pipedrive's token endpoint answering without end: the refresh reads to its cap, then
fails with the cap's sentence (its API answers have had their cap since the start:
``syncd.crm.pipedrive_http.MAX_RESPONSE_BYTES``)."""

from __future__ import annotations

import pytest

from syncd.crm.pipedrive_auth import MAX_TOKEN_BYTES, OAuthTokens
from syncd.errors import AnswerTooLarge
from syncd.report import describe
from syncd_testkit.flood import FloodServer
from tests.hostile.answer_caps import check_stopped_at_the_cap


@pytest.mark.parametrize("kind", ["endless", "announced"])
def test_a_token_endpoint_answering_without_end_is_read_to_the_token_cap(kind: str) -> None:
    with FloodServer(None, kind) as flood:
        tokens = OAuthTokens("client", "secret", "refresh", token_url=f"{flood.origin}/token")
        with pytest.raises(AnswerTooLarge) as caught:
            tokens.headers()
    assert caught.value.limit == MAX_TOKEN_BYTES
    assert "was over syncd's 1 MiB cap" in describe(caught.value)
    check_stopped_at_the_cap(flood, MAX_TOKEN_BYTES)
