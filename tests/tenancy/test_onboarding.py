"""The platform operator creates a town with its first admin in one form (/hq/platform/towns/), and
sees what each town still lacks; no town admin may, and bad input says which field and stores nothing."""

import pytest
from django.contrib.auth import get_user_model

from tenancy.models import AuditEvent, Membership, Municipality

GOOD = {
    "code": "990019", "slug": "town-c", "name_ja": "水守町", "name_en": "Mizumori Town",
    "admin_username": "c-admin", "admin_password": "Kasen-Mamoru-2026!",
}


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("platform-op", password="pw-platform-123")


def test_the_platform_operator_creates_a_town_and_its_admin_in_one_step(client, operator, towns):
    client.force_login(operator)
    response = client.post("/hq/platform/towns/", GOOD)
    assert response.status_code == 302
    town = Municipality.objects.get(slug="town-c")
    admin = get_user_model().objects.get(username="c-admin")
    assert admin.check_password(GOOD["admin_password"]) and not admin.is_superuser
    assert Membership.objects.get(user=admin).municipality == town and Membership.objects.get(user=admin).role == "admin"
    audit = AuditEvent.objects.get(action="town_onboarded")
    assert audit.actor == operator and audit.municipality == town and GOOD["admin_password"] not in str(audit.detail)
    # The new admin can log in and run the town's admin pages at once.
    client.logout()
    logged_in = client.post("/accounts/login/", {"username": "c-admin", "password": GOOD["admin_password"]})
    assert logged_in.status_code == 302
    assert client.get("/hq/admin/tokens/").status_code == 200
    # The operator sees the new town flagged: no boundary drawn, no stations yet.
    client.force_login(operator)
    page = client.get("/hq/platform/towns/").content.decode()
    row = page[page.index('data-town="town-c"'):]
    row = row[: row.index("</tr>")]
    assert 'data-flag="no-boundary"' in row and 'data-flag="no-stations"' in row and 'data-flag="no-admin"' not in row


@pytest.mark.parametrize(
    "change, field",
    [
        ({"code": "990011"}, "code"),  # wrong check digit
        ({"code": "99001"}, "code"),
        ({"code": "990001"}, "code"),  # town-a's
        ({"slug": "town a!"}, "slug"),
        ({"slug": "town-a"}, "slug"),
        ({"name_ja": ""}, "name_ja"),
        ({"name_en": "x" * 101}, "name_en"),
        ({"admin_username": "a b/<script>"}, "admin_username"),
        ({"admin_username": "taken"}, "admin_username"),
        ({"admin_password": "123"}, "admin_password"),
        ({"admin_password": "c-admin"}, "admin_password"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(client, operator, towns, change, field):
    get_user_model().objects.create_user("taken", password="pw-taken-123")
    client.force_login(operator)
    towns_before, users_before = Municipality.objects.count(), get_user_model().objects.count()
    response = client.post("/hq/platform/towns/", {**GOOD, **change})
    page = response.content.decode()
    assert response.status_code == 400 and f"<li>{field}:" in page and "<script>" not in page
    assert GOOD["admin_password"] not in page  # a typed password is never sent back
    assert (Municipality.objects.count(), get_user_model().objects.count()) == (towns_before, users_before)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_no_town_member_may_onboard_a_town(client, towns, role):
    user = get_user_model().objects.create_user(f"a-{role}", password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=towns[0], role=role)
    client.force_login(user)
    assert client.get("/hq/platform/towns/").status_code == 403
    assert client.post("/hq/platform/towns/", GOOD).status_code == 403
    assert not Municipality.objects.filter(slug="town-c").exists()


def test_anonymous_is_sent_to_log_in(client, towns):
    assert client.post("/hq/platform/towns/", GOOD)["Location"].startswith("/accounts/login/")
    assert not Municipality.objects.filter(slug="town-c").exists()


def test_a_town_without_a_boundary_is_flagged_with_how_the_maps_draw_it(client, operator, stations, towns):
    from sensors.models import Station

    Station.objects.filter(code="A-PRIVATE").update(is_active=False)  # retired: not counted
    client.force_login(operator)
    page = client.get("/hq/platform/towns/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = page[page.index('data-town="town-a"'):]
    row = row[: row.index("</tr>")]
    assert 'data-flag="no-boundary"' in row and "outline of its 3 stations" in row
    page_ja = client.get("/hq/platform/towns/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "観測所3か所を囲む概略の範囲" in page_ja
    towns[1].boundary = {"type": "Polygon", "coordinates": [[[141, 36], [141.1, 36], [141.1, 36.1], [141, 36]]]}
    towns[1].save()
    Municipality.objects.create(code="990019", slug="town-c", name_ja="c", name_en="C")
    page = client.get("/hq/platform/towns/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    rows = {slug: page[page.index(f'data-town="{slug}"'):][: page[page.index(f'data-town="{slug}"'):].index("</tr>")]
            for slug in ("town-b", "town-c")}
    assert 'data-flag="no-boundary"' not in rows["town-b"]
    assert "not drawn on the maps" in rows["town-c"]


def test_the_operators_hq_header_links_to_town_onboarding_and_no_one_elses_does(client, operator, towns):
    client.force_login(operator)
    assert 'href="/hq/platform/towns/"' in client.get("/hq/").content.decode()
    for role in ("viewer", "operator", "admin"):
        user = get_user_model().objects.create_user(f"nav-{role}", password="pw-12345-abc")
        Membership.objects.create(user=user, municipality=towns[0], role=role)
        client.force_login(user)
        page = client.get("/hq/").content.decode()
        assert "/hq/platform/towns/" not in page, role
