"""Orders on `/` and `/hq/`: the banner first, with the official words only inside the order section."""

import json
import re

import pytest

from alerts.vocabulary import RESERVED_WORDS
from orders.services import order_issue
from tenancy.selectors import viewer_for_user
from tests.public_page import public_shell

ORDER_SECTION = re.compile(r'<section id="mz-orders".*?</section>', re.S)


def page_json(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def issue(member, level, codes, **extra):
    return order_issue(viewer=viewer_for_user(member), actor=member, level=level, districts=codes, **extra)


@pytest.mark.django_db
def test_the_public_page_shows_orders_in_force_first_and_order_words_only_there(client, members, districts, shelters, stations):
    html = public_shell(client)
    assert "現在、発令中の避難情報はありません。" in html and "No evacuation information is in force." not in html
    assert "No evacuation information is in force." in public_shell(client, "/?lang=en")
    assert [f["id"] for f in page_json(html, "mz-orders-data")["districts"]] == ["A-1", "A-2", "B-1"]
    for word in RESERVED_WORDS:
        assert word not in html, word

    issue(members["a-operator"], 4, ["A-1", "A-2"], shelters=["SH-A"], open_shelters=True, reason="<b>bold</b>")
    html = public_shell(client)  # the shell is rebuilt once per tick: ask for the next one
    section = ORDER_SECTION.search(html).group(0)
    assert html.index('id="mz-orders"') < html.index('class="mz-map"')  # before the map
    assert "警戒レベル4 避難指示" in section and "危険な場所から全員避難" in section
    banners = section.split('id="mz-order-banners"')[1].split("</div>")[0]
    assert "上町、下町" in banners and "A小学校 (開設中)" in banners and "A School" not in banners
    english = ORDER_SECTION.search(public_shell(client, "/?lang=en")).group(0)
    banners = english.split('id="mz-order-banners"')[1].split("</div>")[0]
    assert "Kamimachi, Shimomachi" in banners and "A School (Open)" in banners and "A小学校" not in banners
    data = page_json(html, "mz-orders-data")
    assert data["orders"][0]["properties"]["name_ja"] == "避難指示"
    # Whether each shelter is designated for floods travels with it: orders.js suggests none marked "no".
    assert {s["code"]: s["for_flood"] for s in data["shelters"]} == {"SH-A": None, "SH-B": None}
    assert data["styles"]["4"]["fill"] == "#aa00aa"
    assert "events" not in data["orders"][0]["properties"]  # who acted is not for the public
    assert "<b>bold</b>" not in html  # the reason is not on the page unescaped
    # The official order words appear only in the order section (gauges still say 警戒レベルN相当).
    outside = ORDER_SECTION.sub("", html)
    for word in RESERVED_WORDS:
        assert word not in outside, word


@pytest.mark.django_db
def test_the_hq_page_carries_the_towns_board_and_neighbours_orders(client, members, districts):
    issue(members["a-operator"], 3, ["A-1"])
    client.force_login(members["b-operator"])
    html = client.get("/hq/").content.decode()
    data = page_json(html, "mz-orders-data")
    assert [f["properties"]["municipality"] for f in data["orders"]] == ["town-a"]  # a neighbour's order
    board = page_json(html, "mz-order-board-data")
    assert board["municipality"] == "town-b" and board["may_issue"] is True
    client.force_login(members["b-viewer"])
    assert page_json(client.get("/hq/").content.decode(), "mz-order-board-data")["may_issue"] is False
