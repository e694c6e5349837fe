"""The town admin's pages: sharing, audit log, usage. Only for admins, only for their own town."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from sensors.models import SharingGrant, Station, Visibility
from tenancy.models import AuditEvent, Membership

SHARING = "/hq/admin/sharing/"


def member(town, name, role):
    user = get_user_model().objects.create_user(name, password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=town, role=role)
    return user


@pytest.fixture
def admin_a(towns):
    return member(towns[0], "a-admin", Membership.Role.ADMIN)


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.OPERATOR])
@pytest.mark.parametrize("url", [SHARING, "/hq/admin/audit/", "/hq/admin/usage/"])
def test_only_admins_get_in(client, towns, role, url):
    client.force_login(member(towns[0], f"a-{role}", role))
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "visibility", "station": "A-PRIVATE", "visibility": "public"}).status_code == 403


def test_anonymous_is_sent_to_login(client, db):
    assert client.get(SHARING)["Location"].startswith("/accounts/login/")


def test_admin_sees_and_changes_only_own_stations(client, stations, towns, admin_a):
    client.force_login(admin_a)
    page = client.get(SHARING).content.decode()
    assert "A-PRIVATE" in page and "B-PRIVATE" not in page
    client.post(SHARING, {"action": "visibility", "station": "A-PRIVATE", "visibility": "public"})
    assert Station.objects.get(code="A-PRIVATE").visibility == Visibility.PUBLIC
    # Another town's station is a 404 and stays as it was, whatever its visibility.
    for code in ("B-PRIVATE", "B-PUBLIC", "NOPE"):
        response = client.post(SHARING, {"action": "visibility", "station": code, "visibility": "private"})
        assert response.status_code == 404
    assert Station.objects.get(code="B-PUBLIC").visibility == Visibility.PUBLIC


def test_admin_grants_and_withdraws(client, stations, towns, admin_a):
    a, b = towns
    client.force_login(admin_a)
    client.post(SHARING, {"action": "grant", "station": "A-REGION", "grantee": b.pk})
    grant = SharingGrant.objects.get(station__code="A-REGION", grantee=b)
    assert grant.granted_by == admin_a
    client.post(SHARING, {"action": "withdraw", "grant": grant.pk})
    grant.refresh_from_db()
    assert grant.withdrawn_by == admin_a
    # B's grant to A cannot be withdrawn by A.
    b_grant = SharingGrant.objects.get(station__code="B-SHARED")
    assert client.post(SHARING, {"action": "withdraw", "grant": b_grant.pk}).status_code == 404
    b_grant.refresh_from_db()
    assert b_grant.withdrawn_at is None


def test_granting_to_oneself_is_an_error_message_not_a_crash(client, stations, towns, admin_a):
    client.force_login(admin_a)
    response = client.post(SHARING, {"action": "grant", "station": "A-PRIVATE", "grantee": towns[0].pk}, follow=True)
    assert response.status_code == 404  # your own town is not among the neighbours you can pick


def test_group_create_and_share(client, stations, towns, admin_a):
    client.force_login(admin_a)
    client.post(SHARING, {"action": "group", "name": "river set", "stations": ["A-PRIVATE", "A-REGION"]})
    group = admin_a.memberships.get().municipality.station_groups.get()
    assert sorted(group.stations.values_list("code", flat=True)) == ["A-PRIVATE", "A-REGION"]
    response = client.post(SHARING, {"action": "group", "name": "sneaky", "stations": ["A-PRIVATE", "B-PRIVATE"]},
                           follow=True)
    assert "at least one of your stations" in response.content.decode()
    client.post(SHARING, {"action": "grant", "group": group.pk, "grantee": towns[1].pk})
    assert SharingGrant.objects.filter(group=group, grantee=towns[1]).exists()


def test_sharing_changes_need_csrf(stations, admin_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    response = client.post(SHARING, {"action": "visibility", "station": "A-PRIVATE", "visibility": "public"})
    assert response.status_code == 403
    assert Station.objects.get(code="A-PRIVATE").visibility == Visibility.PRIVATE


def test_audit_page_lists_only_own_town(client, stations, towns, admin_a):
    AuditEvent.objects.create(action=AuditEvent.Action.TOKEN_CREATED, municipality=towns[0], target="mzm_AAAA…")
    AuditEvent.objects.create(action=AuditEvent.Action.TOKEN_CREATED, municipality=towns[1], target="mzm_BBBB…")
    client.force_login(admin_a)
    page = client.get("/hq/admin/audit/").content.decode()
    assert "mzm_AAAA" in page and "mzm_BBBB" not in page


def test_usage_page_and_csv(client, stations, towns, admin_a, token_a):
    from tenancy.api_usage import api_usage_counter, api_usage_flush

    api_usage_counter().discard_all()
    client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    api_usage_flush()  # counted calls reach the report when flushed (Celery beat / the server's flusher)
    client.force_login(admin_a)
    response = client.get("/hq/admin/usage/?format=csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["month", "municipality", "code"]
    assert [row[1] for row in rows[1:]] == ["town-a"]  # a town admin sees its own row only
    values = dict(zip(rows[0], rows[1]))
    assert values["stations"] == "4" and values["api_calls"] == "1"
    assert client.get("/hq/admin/usage/?month=2026-13").status_code == 400
    assert client.get("/hq/admin/usage/?month=<script>").status_code == 400


# --- thresholds, tokens, members ---------------------------------------------------------------


def test_admin_changes_a_threshold_and_the_level_follows(client, stations, towns, admin_a):
    from datetime import timedelta

    from django.utils import timezone

    from sensors.models import StationState, Threshold
    from sensors.services import observation_ingest

    observation_ingest(
        municipality=None, items=[{"station": "A-PUBLIC", "observed_at": timezone.now() - timedelta(minutes=1),
                                   "value": 3.2}], source="http",
    )
    assert StationState.objects.get(station__code="A-PUBLIC").level == 2
    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="evacuation_decision")
    client.force_login(admin_a)
    client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": "3.1"})
    assert Threshold.objects.get(pk=threshold.pk).value == 3.1
    assert StationState.objects.get(station__code="A-PUBLIC").level == 3
    event = AuditEvent.objects.get(action=AuditEvent.Action.THRESHOLD_CHANGED)
    assert (event.target, event.detail) == ("A-PUBLIC evacuation_decision", {"from": 3.5, "to": 3.1})


@pytest.mark.parametrize("bad", ["", "abc", "nan", "inf", "1e999", "-999"])
def test_bad_threshold_values_are_refused_and_nothing_changes(client, stations, admin_a, bad):
    from sensors.models import Threshold

    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="flood_danger")
    client.force_login(admin_a)
    page = client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": bad}, follow=True)
    assert Threshold.objects.get(pk=threshold.pk).value == 4.0
    assert "A-PUBLIC" in page.content.decode()


@pytest.mark.parametrize(
    ("typed", "stored"), [("４．２", 4.2), ("  4.3 ", 4.3), ("４", 4.0), ("4.25", 4.25)]
)
def test_full_width_digits_are_read_as_numbers(client, stations, admin_a, typed, stored):
    from sensors.models import Threshold

    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="flood_danger")
    client.force_login(admin_a)
    client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": typed})
    assert Threshold.objects.get(pk=threshold.pk).value == stored


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("4,2", "小数点は「.」"),  # 4.2 or 42? Not guessed.
        ("４，２", "use &#x27;.&#x27; for the decimal point"),
        ("3.6", "must be below"),  # flood danger (L4) at or below evacuation decision (L3 = 3.5)… 3.6 is fine,
        ("5.0", "must be below"),  # …but equal to flooding (L5 = 5.0) is not
        ("5.5", "must be below"),  # above flooding
        ("1.0", "must be below"),  # below the standby level, which sits below the scale
        ("x" * 10_000, "longer than"),
        ("<script>alert(1)</script>", "is not a number"),
        ("\x00", "is not a number"),
    ],
)
def test_bad_or_out_of_order_thresholds_are_refused_with_a_clear_message(client, stations, admin_a, bad, says):
    from sensors.models import Threshold, ThresholdRevision

    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="flood_danger")
    client.force_login(admin_a)
    page = client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": bad}, follow=True).content.decode()
    if bad == "3.6":
        assert Threshold.objects.get(pk=threshold.pk).value == 3.6
        return
    assert Threshold.objects.get(pk=threshold.pk).value == 4.0
    assert not ThresholdRevision.objects.exists()
    assert says in page, page
    assert "<script>alert(1)" not in page


def test_threshold_rows_keep_their_place_after_an_edit(client, stations, admin_a):
    import re

    from sensors.models import Threshold

    client.force_login(admin_a)

    def rows():
        page = client.get("/hq/admin/thresholds/").content.decode()
        return [int(pk) for pk in re.findall(r'name="threshold" value="(\d+)"', page)]

    before = rows()
    levels = [Threshold.objects.get(pk=pk).level for pk in before if Threshold.objects.get(pk=pk).station.code == "A-PUBLIC"]
    assert levels == [None, 2, 3, 4, 5]  # by level, the level-less standby first
    # Lower the standby level: by value it was already first; raise flood caution to just below L3.
    caution = Threshold.objects.get(station__code="A-PUBLIC", name="flood_caution")
    client.post("/hq/admin/thresholds/", {"threshold": caution.pk, "value": "3.49"})
    assert Threshold.objects.get(pk=caution.pk).value == 3.49
    assert rows() == before


def test_every_threshold_change_keeps_the_value_it_replaces(client, stations, admin_a):
    from datetime import timedelta

    from django.utils import timezone

    from sensors.models import Threshold

    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="flood_danger")
    client.force_login(admin_a)
    before_edits = timezone.now()
    client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": "4.2"})
    between = timezone.now()
    client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": "4.4"})
    threshold = Threshold.objects.get(pk=threshold.pk)
    history = [(r.value, r.valid_from is None) for r in threshold.revisions.order_by("valid_to")]
    assert history == [(4.0, True), (4.2, False)]
    assert threshold.value_at(before_edits - timedelta(days=1)) == 4.0
    assert threshold.value_at(between) == 4.2
    assert threshold.value_at(timezone.now()) == threshold.value_at(None) == 4.4
    first, second = threshold.revisions.order_by("valid_to")
    assert first.valid_to == second.valid_from and second.valid_to == threshold.valid_from


def test_another_towns_threshold_is_404(client, stations, admin_a):
    from sensors.models import Threshold

    threshold = Threshold.objects.get(station__code="B-PUBLIC", name="flood_danger")
    client.force_login(admin_a)
    assert client.post("/hq/admin/thresholds/", {"threshold": threshold.pk, "value": "1"}).status_code == 404
    assert Threshold.objects.get(pk=threshold.pk).value == 4.0


def test_admin_creates_a_token_shown_once_and_revokes_it(client, stations, towns, admin_a):
    from tenancy.models import IngestToken

    client.force_login(admin_a)
    page = client.post("/hq/admin/tokens/", {"action": "create", "label": "river gw"}).content.decode()
    secret = __import__("re").search(r'id="mz-new-token">([^<]+)<', page).group(1)
    token = IngestToken.objects.get(label="river gw")
    assert token.digest == IngestToken.digest_of(secret) and token.municipality == towns[0]
    assert secret not in client.get("/hq/admin/tokens/").content.decode()
    client.post("/hq/admin/tokens/", {"action": "revoke", "token": token.pk})
    assert IngestToken.objects.get(pk=token.pk).revoked_at is not None
    b_token = IngestToken.objects.create(municipality=towns[1], prefix="mzm_b", digest="b" * 64)
    assert client.post("/hq/admin/tokens/", {"action": "revoke", "token": b_token.pk}).status_code == 404


def test_admin_manages_members_of_own_town_only(client, towns, admin_a, user_b):
    client.force_login(admin_a)
    client.post("/hq/admin/members/", {"username": "b-viewer", "role": "operator"})
    assert Membership.objects.get(user=user_b, municipality=towns[0]).role == "operator"
    assert Membership.objects.get(user=user_b, municipality=towns[1]).role == "viewer"  # B's own untouched
    client.post("/hq/admin/members/", {"username": "b-viewer", "action": "remove"})
    assert not Membership.objects.filter(user=user_b, municipality=towns[0]).exists()
    client.post("/hq/admin/members/", {"username": "a-admin", "action": "remove"})
    assert Membership.objects.filter(user=admin_a, municipality=towns[0]).exists()
    page = client.post("/hq/admin/members/", {"username": "nobody", "role": "admin"}, follow=True).content.decode()
    assert "その名前の有効なユーザーはいません" in page  # the default language
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MEMBERSHIP_CHANGED).count() == 2


def test_admin_manages_alert_channels_and_sees_failing_ones(client, stations, towns, admin_a):
    from django.utils import timezone

    from alerts.models import NotificationChannel

    client.force_login(admin_a)
    page = client.post("/hq/admin/channels/", {"kind": "webhook", "target": "https://hq.example/hook",
                                               "scope": "visible", "enabled": "on"}, follow=True).content.decode()
    assert "A webhook needs a secret" in page and not NotificationChannel.objects.exists()
    client.post("/hq/admin/channels/", {"kind": "email", "target": "duty@a.example", "scope": "visible", "enabled": "on"})
    channel = NotificationChannel.objects.get(municipality=towns[0])
    client.post("/hq/admin/channels/", {"channel": channel.pk, "kind": "email", "target": "duty@a.example",
                                        "scope": "subscribed", "stations": ["B-SHARED", "B-PRIVATE"], "enabled": "on"})
    channel.refresh_from_db()
    # B-PRIVATE is not visible to town A, so it cannot be subscribed to, whatever the form says.
    assert (channel.scope, list(channel.stations.values_list("code", flat=True))) == ("subscribed", ["B-SHARED"])
    NotificationChannel.objects.filter(pk=channel.pk).update(failing_since=timezone.now(), last_error="550 no such user")
    assert "550 no such user" in client.get("/hq/admin/channels/").content.decode()
    other = NotificationChannel.objects.create(municipality=towns[1], kind="email", target="b@b.example")
    assert client.post("/hq/admin/channels/", {"channel": other.pk, "target": "x@x.example"}).status_code == 404
    assert NotificationChannel.objects.get(pk=other.pk).target == "b@b.example"


@pytest.mark.parametrize(
    "raw, saved, error",
    [("15", 15, None), ("0", 0, None), ("", None, None), ("-5", "keep", "whole minutes"),
     ("2000", "keep", "0 and 24 hours"), ("1e3", "keep", "whole minutes"), ("<b>", "keep", "whole minutes")],
)
def test_admin_sets_a_channels_digest_window_in_minutes_and_bad_ones_are_refused(
    client, towns, admin_a, raw, saved, error
):
    from datetime import timedelta

    from alerts.models import NotificationChannel

    channel = NotificationChannel.objects.create(
        municipality=towns[0], kind="email", target="duty@a.example", digest_window=timedelta(minutes=7)
    )
    client.force_login(admin_a)
    page = client.post("/hq/admin/channels/", {"channel": channel.pk, "kind": "email", "target": "duty@a.example",
                                               "scope": "visible", "enabled": "on", "digest_minutes": raw},
                       follow=True).content.decode()
    channel.refresh_from_db()
    if error:
        assert error in page and channel.digest_window == timedelta(minutes=7)
    else:
        assert channel.digest_minutes == saved
        assert f'name="digest_minutes" inputmode="numeric" pattern="[0-9]*" maxlength="4" value="{"" if saved is None else saved}"' in page


def test_the_tokens_page_checks_for_a_token_and_the_first_reading_of_the_towns_own_stations(client, stations, towns, admin_a):
    import re

    client.force_login(admin_a)

    def check(name):
        page = client.get("/hq/admin/tokens/").content.decode()
        found = re.search(rf'<li data-check="{name}">(.*?)</li>', page, flags=re.S)
        return found.group(1) if found else None

    assert check("token").startswith("✗") and check("first-reading").startswith("✗")
    assert set(re.findall(r"A-\w+", check("silent"))) == {"A-PRIVATE", "A-SHARED", "A-REGION", "A-PUBLIC"}
    page = client.post("/hq/admin/tokens/", {"action": "create", "label": "gw"}).content.decode()
    secret = re.search(r'id="mz-new-token">([^<]+)<', page).group(1)
    assert check("token").startswith("✓")
    # The gateway's first POST with the new token; the check lists only the town's own stations.
    client.logout()
    reply = client.post(
        "/api/v1/observations", {"observations": [{"station": "A-PUBLIC", "observed_at": "2026-05-01T10:00:00+09:00",
                                                   "value": 1.2}]},
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert reply.json()["accepted"] == 1
    client.force_login(admin_a)
    first = check("first-reading")
    assert first.startswith("✓") and "1 / 4" in first and "A-PUBLIC" in first
    assert "A-PUBLIC" not in check("silent") and "B-" not in check("silent")


@pytest.mark.parametrize("language, says", [
    ("ja", ["共有を取り消しました", "を無効にしました", "その名前の有効なユーザーはいません", "自分自身は外せません",
            "メール", "町が見られるすべての観測所", "Webhook(JSON POST、HMAC署名付き)"]),
    ("en", ["Sharing withdrawn", "Revoked", "No active user with that name", "You cannot remove yourself",
            "e-mail", "every station the town may see", "webhook (JSON POST, HMAC-signed)"]),
])
def test_the_admin_pages_answer_in_the_readers_language_only(client, stations, towns, admin_a, language, says):
    """Confirmations, refusals and the channel kinds and scopes are in the page's language, not
    English in Japanese mode nor both languages glued together."""
    from tenancy.models import IngestToken

    a, b = towns
    client.force_login(admin_a)
    header = {"HTTP_ACCEPT_LANGUAGE": language}
    seen = []
    client.post(SHARING, {"action": "grant", "station": "A-REGION", "grantee": b.pk}, **header)
    grant = SharingGrant.objects.get(station__code="A-REGION", grantee=b)
    seen.append(client.post(SHARING, {"action": "withdraw", "grant": grant.pk}, follow=True, **header))
    token = IngestToken.objects.create(municipality=a, prefix="mzm_lang", digest="c" * 64)
    seen.append(client.post("/hq/admin/tokens/", {"action": "revoke", "token": token.pk}, follow=True, **header))
    seen.append(client.post("/hq/admin/members/", {"username": "nobody", "role": "admin"}, follow=True, **header))
    seen.append(client.post("/hq/admin/members/", {"username": "a-admin", "action": "remove"}, follow=True, **header))
    seen.append(client.get("/hq/admin/channels/", **header))
    page = "\n".join(response.content.decode() for response in seen)
    for text in says:
        assert text in page, text
    other = dict(ja=["Sharing withdrawn", "You cannot remove yourself", "every station the town may see"],
                 en=["共有を取り消しました", "自分自身は外せません", "町が見られるすべての観測所"])[language]
    for text in other:
        assert text not in page, text
