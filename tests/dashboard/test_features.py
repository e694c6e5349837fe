"""The board's station features per audience (dashboard.features): a second look applies what the live
publisher published to that audience's groups, never another town's private station, and gives the
same features a full build gives."""

from __future__ import annotations

import pytest

from dashboard import features as feature_store
from events.services import drain_pending
from tests.dashboard.test_pages import observe, page, station_features

pytestmark = pytest.mark.django_db


def board_features(client) -> dict[str, dict]:
    return station_features(page(client, "/hq/"))


def test_the_board_follows_its_towns_messages_and_never_another_towns(client, stations, user_a):
    client.force_login(user_a)
    for code, value in (("A-PRIVATE", 3.4), ("B-SHARED", 2.9), ("A-PUBLIC", 3.8)):
        observe(code, value, minutes_ago=2)
    drain_pending()
    first = board_features(client)
    assert {"A-PRIVATE", "B-SHARED", "A-PUBLIC"} <= set(first) and "B-PRIVATE" not in first

    for code, value in (("A-PRIVATE", 3.6), ("B-PRIVATE", 4.2), ("B-SHARED", 3.1), ("A-PUBLIC", 4.1)):
        observe(code, value)
    drain_pending()  # the live publisher (a test's commit never comes to drain it)
    second = board_features(client)

    assert [store.last_update for store in feature_store._audiences.values()] == ["changes"]
    assert set(second) == set(first)
    assert second["A-PRIVATE"]["properties"]["value"] == 3.6
    assert second["B-SHARED"]["properties"]["visibility"] == "shared"
    # Public stations reach the board through the public group's messages, which leave sharing out.
    assert second["A-PUBLIC"]["properties"]["visibility"] == "public"

    feature_store.forget_audiences()
    assert board_features(client) == second
    assert [store.last_update for store in feature_store._audiences.values()] == ["full"]


def test_each_audience_has_its_own_features(client, stations, user_a, user_b):
    client.force_login(user_a)
    seen_by_a = set(board_features(client))
    client.force_login(user_b)
    seen_by_b = set(board_features(client))

    assert "A-PRIVATE" in seen_by_a and "A-PRIVATE" not in seen_by_b
    assert "B-PRIVATE" in seen_by_b and "B-PRIVATE" not in seen_by_a
    assert len(feature_store._audiences) == 2
