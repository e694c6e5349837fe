"""The one query-parameter parser (config.api_params) and the endpoints that use it: every bad value
is a 400 naming the parameter, whatever the endpoint."""

import pytest
from rest_framework.exceptions import ValidationError

from config.api_params import choice_param, flag_param, int_param, slug_param


@pytest.mark.parametrize("raw, expected", [("12", 12), ("0", 0), ("-3", -3), ("", 7), (None, 7)])
def test_integers_in_range_are_read(raw, expected):
    query = {} if raw is None else {"n": raw}
    assert int_param(query, "n", low=-5, high=20, default=7) == expected


@pytest.mark.parametrize("raw", ["１２", " 12", "12 ", "1_0", "+3", "1e3", "0x10", "--1", "-", "9" * 40, "3.0", "x"])
def test_anything_but_plain_ascii_digits_is_refused(raw):
    with pytest.raises(ValidationError) as refused:
        int_param({"n": raw}, "n", low=-(10**30), high=10**30)
    assert "n" in refused.value.detail


@pytest.mark.parametrize("raw", ["21", "-6"])
def test_integers_out_of_range_are_refused_with_the_range(raw):
    with pytest.raises(ValidationError) as refused:
        int_param({"n": raw}, "n", low=-5, high=20)
    assert "between -5 and 20" in str(refused.value.detail["n"])


def test_choices_slugs_and_flags():
    assert choice_param({}, "state", ["open", "closed"], default="open") == "open"
    assert choice_param({"state": "closed"}, "state", ["open", "closed"]) == "closed"
    assert slug_param({"municipality": "town-a"}) == "town-a"
    assert slug_param({}) is None
    assert flag_param({"all": "1"}, "all") is True and flag_param({}, "all") is False
    for call in (
        lambda: choice_param({"state": "OPEN"}, "state", ["open"]),
        lambda: slug_param({"municipality": "a\x00b"}),
        lambda: slug_param({"municipality": "a" * 41}),
        lambda: slug_param({"municipality": "\u202etown"}),
        lambda: flag_param({"all": "yes"}, "all"),
    ):
        with pytest.raises(ValidationError):
            call()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, parameter, value",
    [
        ("/api/v1/alerts", "limit", "１０"),
        ("/api/v1/alerts", "level", " 3"),
        ("/api/v1/alerts", "municipality", "town-a\x00"),
        ("/api/v1/events", "offset", "1_000"),
        ("/api/v1/events", "municipality", "x" * 500),
        ("/api/v1/orders", "all", "true"),
        ("/api/v1/stations", "municipality", "\u202e"),
        ("/api/v1/stations", "kind", "<script>"),
    ],
)
def test_every_endpoint_refuses_the_same_way(client, path, parameter, value):
    response = client.get(path, {parameter: value})
    assert response.status_code == 400
    assert parameter in response.json()
