"""The situation report: the printable page and its PDF (WeasyPrint, IPAex Gothic embedded), read back
with pypdf: Japanese station names, peaks, acknowledgements; nothing the viewer may not see."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from pypdf import PdfReader

from alerts.models import Alert
from alerts.services import alert_acknowledge
from tenancy.models import Membership

from .conftest import ingest

STAGES = [2.0, 2.4, 2.9, 3.3, 3.7, 4.1, 3.8, 3.4]


@pytest.fixture
def storm(stations, towns, clock, django_capture_on_commit_callbacks):
    operator = get_user_model().objects.create_user("a-op", password="pw-a-op-123")
    Membership.objects.create(user=operator, municipality=towns[0], role=Membership.Role.OPERATOR)
    start = clock.now
    for step, stage in enumerate(STAGES):
        at = start + timedelta(minutes=10 * step)
        clock.now = at + timedelta(seconds=20)
        for code in ("A-PUBLIC", "B-PRIVATE"):
            ingest(code, at, stage, django_capture_on_commit_callbacks)
        if step == 5:
            alert_acknowledge(Alert.objects.get(station__code="A-PUBLIC", rule__kind="threshold"), operator)
    clock.advance(minutes=5)
    return operator, {"since": (start - timedelta(minutes=5)).isoformat(), "until": clock.now.isoformat()}


def test_the_pdf_carries_the_report_in_japanese_with_the_font_embedded(client, storm):
    operator, window = storm
    client.force_login(operator)
    response = client.get("/hq/reports/situation.pdf", window)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="situation-')
    reader = PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "状況報告" in text
    assert "A-PUBLIC 観測所" in text  # a Japanese station name, as text (not an image)
    assert "4.10 m" in text  # the peak
    assert "警戒レベル4相当" in text
    assert "a-op" in text  # who acknowledged
    assert "B-PRIVATE" not in text  # town B's private gauge is not A's to see
    fonts = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            descriptor = font.get_object().get("/FontDescriptor") or {}
            if "/FontFile2" in descriptor or "/FontFile3" in descriptor:
                fonts.add(str(font.get_object()["/BaseFont"]))
            for child in font.get_object().get("/DescendantFonts") or []:
                child_descriptor = child.get_object().get("/FontDescriptor") or {}
                if any(key in child_descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
                    fonts.add(str(child.get_object()["/BaseFont"]))
    assert any("IPAex" in name for name in fonts), fonts


def test_the_printable_page_has_maps_peaks_and_a_print_stylesheet(client, storm):
    operator, window = storm
    client.force_login(operator)
    response = client.get("/hq/reports/situation/", window)
    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    assert html.count('src="data:image/png;base64,') == 3  # three moments by default
    assert "@media print" in html and "A-PUBLIC 観測所" in html and "B-PRIVATE" not in html
    assert "/static/fonts/ipaexg" in html


@pytest.mark.parametrize(
    "query",
    [{"since": "<script>x</script>"}, {"until": "2026-13-01T00:00:00Z"}, {"at": "\x00"},
     {"since": "2026-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}],
)
def test_bad_windows_are_refused_clearly(client, user_a, stations, query):
    client.force_login(user_a)
    for url in ("/hq/reports/situation/", "/hq/reports/situation.pdf"):
        response = client.get(url, query)
        assert response.status_code == 400
        assert "<script>x" not in response.content.decode()


def test_reports_need_a_login(client, stations):
    for url in ("/hq/reports/situation/", "/hq/reports/situation.pdf"):
        assert client.get(url).status_code == 302
