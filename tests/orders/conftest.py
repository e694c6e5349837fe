"""Fixtures for evacuation orders: the level scheme, two districts and a shelter per town, and a
member of each role in each town (the shared `towns` / `stations` fixtures underneath)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from geo.models import Shelter
from orders.models import District
from tenancy.models import Membership

# The alert tests' fixtures: the seeded level scheme (autouse) and the OASIS CAP schema check.
from ..alerts.conftest import assert_valid_cap, cap_schema, level_scheme  # noqa: F401

ROLES = Membership.Role.values


def square(lon: float, lat: float, size: float = 0.01) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]],
    }


@pytest.fixture
def districts(towns):
    """A-1, A-2 of town A side by side; B-1 of town B further east."""
    a, b = towns
    return {
        "A-1": District.objects.create(code="A-1", municipality=a, name_ja="上町", name_en="Kamimachi", geometry=square(140.0, 35.0)),
        "A-2": District.objects.create(code="A-2", municipality=a, name_ja="下町", name_en="Shimomachi", geometry=square(140.01, 35.0)),
        "B-1": District.objects.create(code="B-1", municipality=b, name_ja="浜町", name_en="Hamamachi", geometry=square(140.1, 35.0)),
    }


@pytest.fixture
def shelters(towns):
    a, b = towns
    return {
        "SH-A": Shelter.objects.create(code="SH-A", name_ja="A小学校", name_en="A School", municipality=a, lon=140.005, lat=35.005),
        "SH-B": Shelter.objects.create(code="SH-B", name_ja="B公民館", name_en="B Hall", municipality=b, lon=140.105, lat=35.005),
    }


@pytest.fixture
def members(towns):
    """{"a-viewer": User, "a-operator": ..., "b-admin": ...}"""
    users = {}
    for town, prefix in zip(towns, "ab"):
        for role in ROLES:
            user = get_user_model().objects.create_user(f"{prefix}-{role}", password="pw-12345-abc")
            Membership.objects.create(user=user, municipality=town, role=role)
            users[f"{prefix}-{role}"] = user
    return users
