"""What a reader of the public page receives: the shell (/), the base map script and the public
snapshot document. Each helper builds afresh (the responses are otherwise kept for a tick)."""

from __future__ import annotations

import json
import re

from public.tick_cache import forget_all

SNAPSHOT_URL = "/api/v1/public/snapshot"
BASEMAP_URL = "/public/basemap.js"


def public_shell(client, url: str = "/", **headers) -> str:
    forget_all()
    response = client.get(url, **headers)
    assert response.status_code == 200
    return response.content.decode()


def public_document_text(client) -> str:
    forget_all()
    response = client.get(SNAPSHOT_URL, HTTP_ACCEPT_ENCODING="identity")
    assert response.status_code == 200
    return response.content.decode()


def public_document(client) -> dict:
    return json.loads(public_document_text(client))


def with_thresholds(document: dict) -> dict:
    """The document's features with their thresholds back from `threshold_sets`, as the page puts
    them back (static/mizumori/public.js withThresholds): the features as the live messages carry them."""
    sets = document.get("threshold_sets") or {}
    for feature in document["features"]:
        properties = feature["properties"]
        if "threshold_set" in properties:
            properties["thresholds"] = sets[properties.pop("threshold_set")]
    return document


def public_features(client) -> dict[str, dict]:
    return {f["properties"]["code"]: f for f in with_thresholds(public_document(client))["features"]}


def public_basemap(client, language: str | None = None) -> str:
    """The base map script; built per language (`?lang=`, as the shell asks for its own)."""
    forget_all()
    response = client.get(BASEMAP_URL + (f"?lang={language}" if language else ""))
    assert response.status_code == 200
    return response.content.decode()


def basemap_markup(script: str) -> str:
    """The map's markup (map div and legend) that the base map script puts into the page."""
    match = re.search(r"slot\.innerHTML = (\".*?(?<!\\)\");", script)
    return json.loads(match.group(1))


def public_page_text(client) -> str:
    """Everything a reader's browser receives for the public page, as one text."""
    shell = public_shell(client)
    script = public_basemap(client)
    return "\n".join([shell, basemap_markup(script), script, public_document_text(client)])
