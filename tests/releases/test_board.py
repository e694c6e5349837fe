"""Dam release notices on the HQ alert board (issue 16 item 2): the downstream towns' HQs, and the
dam's own, see the notices in force that concern them with the alerts; other towns' boards do not
list them; the board's script refreshes on the `releases` layer as on `alerts`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from releases.models import DamRelease
from releases.services import release_end
from tenancy.models import Membership
from tests.conftest import make_town

from .test_releases import member, notice, post

BOARD = "/hq/alerts/"


@pytest.fixture
def town_c(towns):
    return make_town("990051", "town-c", "town c")


def board(client, user, *, fragment=False) -> str:
    client.force_login(user)
    return client.get(BOARD + ("?fragment=1" if fragment else "")).content.decode()


def test_the_downstream_and_dam_towns_boards_list_the_notice_and_others_do_not(client, dam, towns, town_c, token_a):
    release = post(client, notice(), token_a).json()
    downstream = member(towns[1], "b-viewer", Membership.Role.VIEWER)
    owner = member(towns[0], "a-viewer", Membership.Role.VIEWER)
    elsewhere = member(town_c, "c-admin", Membership.Role.ADMIN)
    for user in (downstream, owner):
        for fragment in (False, True):
            page = board(client, user, fragment=fragment)
            assert f'data-release-id="{release["id"]}"' in page
            assert "【放流中】A-DAM 観測所" in page and "水森川 水森ダム下流〜河口" in page
            assert "120.5 m³/s" in page and "川に近づかないでください。" in page
            assert f'/api/v1/releases/{release["id"]}/cap' in page
    assert "mz-release-row" not in board(client, elsewhere)


def test_an_ended_or_expired_notice_leaves_the_board(client, dam, towns, token_a):
    first = post(client, notice(), token_a).json()
    expiring = post(client, notice(), token_a).json()
    user = member(towns[1], "b-viewer", Membership.Role.VIEWER)
    page = board(client, user, fragment=True)
    assert page.count("mz-release-row") == 2
    release_end(release=DamRelease.objects.get(pk=first["id"]))
    # Its planned end has passed: out of force at once, before the sweep marks it ended.
    DamRelease.objects.filter(pk=expiring["id"]).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert "mz-release-row" not in board(client, user, fragment=True)


def test_the_board_script_listens_to_the_releases_layer(client, towns):
    from django.contrib.staticfiles import finders

    script = open(finders.find("mizumori/alerts.js"), encoding="utf-8").read()
    assert 'layers: ["alerts", "releases"]' in script and 'message.type === "releases"' in script


def test_anonymous_readers_are_sent_to_log_in(client):
    response = client.get(BOARD)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
