"""Issue 16 item 4: shelters in the national standard 指定緊急避難場所一覧 CSV layout — import with a
per-row report, per-hazard suitability, export, and the round trip."""

from __future__ import annotations

import csv
import io
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from geo.models import SHELTER_HAZARDS, Shelter
from geo.selectors import shelter_dataset_csv
from geo.services import shelter_dataset_import
from geo.shelter_dataset import EXPORT_COLUMNS, DatasetError

HEADER = ("全国地方公共団体コード,ID,地方公共団体名,名称,名称_カナ,名称_英字,所在地_連結表記,緯度,経度,電話番号,"
          "災害種別_洪水,災害種別_崖崩れ、土石流及び地滑り,災害種別_高潮,災害種別_地震,災害種別_津波,"
          "災害種別_大規模な火事,災害種別_内水氾濫,災害種別_火山現象,指定避難所との住所同一,想定収容人数,備考")
ROWS = [
    "990001,0001,town a,水森小学校,ミズモリショウガッコウ,Mizumori Elementary School,水森町1-2-3,35.0501,140.0502,"
    "0123-45-6789,1,1,,1,,1,1,,1,500,",
    "990001,0002,town a,川べり公民館,,Kawabe Hall,水森町4-5,35.0601,140.0602,,,○,1,1,1,,,,,\"1,200\",高台",
    "990043,0001,town b,隣町体育館,,Tonari Gym,隣町1,35.1,140.1,,1,,,1,,,,,,80,",
]


def dataset(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


def run(path, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_shelter_dataset", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_standard_layout_imports_with_per_hazard_suitability(towns):
    report = shelter_dataset_import(data=dataset(*ROWS))
    assert (report.created, report.updated, report.encoding) == (3, 0, "UTF-8")
    school = Shelter.objects.get(code="990001-0001")
    assert (school.name_ja, school.name_en, school.address, school.lat, school.lon, school.capacity) == (
        "水森小学校", "Mizumori Elementary School", "水森町1-2-3", 35.0501, 140.0502, 500)
    assert school.municipality == towns[0] and school.status == Shelter.Status.CLOSED
    assert [school.suitable_for(h) for h in SHELTER_HAZARDS] == [True, True, False, True, False, True, True, False]
    hall = Shelter.objects.get(code="990001-0002")
    assert hall.suitable_for("flood") is False and hall.suitable_for("landslide") is True and hall.capacity == 1200
    assert Shelter.objects.get(code="990043-0001").municipality == towns[1]
    # Flood orders can ask for the places designated for floods.
    assert sorted(Shelter.objects.filter(for_flood=True).values_list("code", flat=True)) == ["990001-0001", "990043-0001"]
    assert report.unmapped_columns == ["地方公共団体名", "名称_カナ", "電話番号", "指定避難所との住所同一", "備考"]


def test_the_older_layout_with_bare_hazard_columns_and_cp932(towns):
    header = "NO,名称,住所,緯度,経度,洪水,崖崩れ、土石流及び地滑り,高潮,地震,津波,大規模な火事,内水氾濫,火山現象,想定収容人数"
    text = "\n".join([header, "7,旧町役場,水森町9,35.07,140.07,○,,,○,,,,,２５０"]) + "\n"
    report = shelter_dataset_import(data=text.encode("cp932"), municipality=towns[0])
    assert (report.created, report.encoding) == (1, "CP932")
    shelter = Shelter.objects.get(code="990001-7")
    assert shelter.name_ja == "旧町役場" and shelter.capacity == 250 and shelter.name_en == "旧町役場"
    assert shelter.suitable_for("flood") and shelter.suitable_for("earthquake") and shelter.suitable_for("tsunami") is False


def test_every_row_that_did_not_map_is_reported_by_line(towns):
    rows = [
        ROWS[0],
        "990001,0003,town a,,,,,35.0,140.0,,,,,,,,,,,,",  # no name
        "990001,0004,town a,逆さま,,,,140.0,35.0,,,,,,,,,,,,",  # lat/lon swapped
        "990001,0005,town a,文字,,,,北緯35度,140.0,,,,,,,,,,,,",
        "990001,0006,town a,評価△,,,,35.0,140.0,,△,,,,,,,,,多数,",  # not mapped values: kept, notes
        "999999,0007,town x,よその町,,,,35.0,140.0,,,,,,,,,,,,",  # no such town
        "990001,0001,town a,重複,,,,35.0,140.0,,,,,,,,,,,,",  # ID again
        "990001,,town a,ID無し,,,,35.0,140.0,,,,,,,,,,,,",
        "990001,../x,town a,悪いID,,,,35.0,140.0,,,,,,,,,,,,",
        "990001,0008,town a,NUL\x00入り,,,,35.0,140.0,,,,,,,,,,,,",
        "990001,0009,town a,<script>alert(1)</script>,,,,35.0,140.0,,,,,,,,,,,,",
        "990001,0010,town a,巨大,,,,1e999,140.0,,,,,,,,,,,,",
        "990001,0011,town a," + "長" * 101 + ",,,,35.0,140.0,,,,,,,,,,,,",
    ]
    report = shelter_dataset_import(data=dataset(*rows))
    by_line = {row.line: row for row in report.reports}
    assert report.created == 3  # 0001, 0006 and 0009 (its name is text, escaped wherever it is shown)
    assert by_line[3].error == "名称 is empty"
    assert "緯度 and 経度 swapped" in by_line[4].error
    assert "are not numbers" in by_line[5].error and "are not numbers" in by_line[13].error
    assert by_line[6].error == "" and len(by_line[6].notes) == 2
    assert "想定収容人数 '多数'" in by_line[6].notes[0] and "災害種別_洪水 '△'" in by_line[6].notes[1]
    assert Shelter.objects.get(code="990001-0006").suitable_for("flood") is None
    assert "no municipality with code 999999" in by_line[7].error
    assert "already on line 2" in by_line[8].error
    assert "ID is empty" in by_line[9].error and "must be at most" in by_line[10].error
    assert "control character" in by_line[11].error
    assert "longer than 100" in by_line[14].error
    assert Shelter.objects.get(code="990001-0009").name_ja == "<script>alert(1)</script>"
    assert json.dumps(report.as_dict(), ensure_ascii=False)  # the report is plain data


def test_a_town_upload_imports_only_that_towns_rows(towns):
    report = shelter_dataset_import(data=dataset(*ROWS), municipality=towns[1])
    assert report.created == 1 and Shelter.objects.get().code == "990043-0001"
    assert [row.error for row in report.reports] == ["belongs to town-a, not to town-b: not imported"] * 2


def test_reimport_updates_but_never_touches_live_status(towns):
    shelter_dataset_import(data=dataset(*ROWS))
    Shelter.objects.filter(code="990001-0001").update(status=Shelter.Status.OPEN)
    changed = ROWS[0].replace("水森小学校", "水森小学校(新)").replace(",500,", ",450,")
    report = shelter_dataset_import(data=dataset(changed))
    assert (report.created, report.updated) == (0, 1)
    school = Shelter.objects.get(code="990001-0001")
    assert (school.name_ja, school.capacity, school.status) == ("水森小学校(新)", 450, Shelter.Status.OPEN)


def test_dry_run_stores_nothing(towns):
    report = shelter_dataset_import(data=dataset(*ROWS), dry_run=True)
    assert report.created == 3 and not Shelter.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        ("名前,場所\nx,y\n".encode(), "no column 名称, 緯度, 経度"),
        (b"\xff\xfe\x00\x00garbage\x81", "not UTF-8 or CP932"),
        (b"x" * (10 * 1024 * 1024 + 1), "larger than 10 MiB"),
        (dataset('990001,"0001,unterminated'), ""),
    ],
)
def test_files_that_cannot_be_read_are_clear_errors(towns, data, message):
    if not message:  # a quote left open: csv reads to the end, so the row is simply malformed
        report = shelter_dataset_import(data=data)
        assert report.created == 0
        return
    with pytest.raises(DatasetError, match=message):
        shelter_dataset_import(data=data)
    assert not Shelter.objects.exists()


def test_too_many_rows_is_refused(towns, monkeypatch):
    monkeypatch.setattr("geo.shelter_dataset.MAX_ROWS", 2)
    with pytest.raises(DatasetError, match="more than 2 rows"):
        shelter_dataset_import(data=dataset(*ROWS))
    assert not Shelter.objects.exists()


def test_export_writes_the_standard_layout_and_round_trips(towns, tmp_path):
    shelter_dataset_import(data=dataset(*ROWS))
    Shelter.objects.filter(code="990001-0002").update(name_en="=HYPERLINK(\"http://x\")")
    exported = shelter_dataset_csv()
    assert exported.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [(r["全国地方公共団体コード"], r["ID"], r["名称"]) for r in rows] == [
        ("990001", "0001", "水森小学校"), ("990001", "0002", "川べり公民館"), ("990043", "0001", "隣町体育館")]
    assert rows[0]["災害種別_洪水"] == "1" and rows[0]["災害種別_高潮"] == "" and rows[1]["想定収容人数"] == "1200"
    assert rows[1]["名称_英字"].startswith("'=")  # a spreadsheet formula is defused

    before = {s.code: s for s in Shelter.objects.all()}
    path = tmp_path / "shelters.csv"
    call_command("export_shelter_dataset", "--municipality", "town-a", "-o", str(path), stdout=StringIO())
    Shelter.objects.filter(municipality=towns[0]).delete()
    out, err = run(path)
    assert "2 created, 0 updated, 0 row(s) skipped, of 2 (text read as UTF-8)" in out
    assert "columns not mapped (ignored): 地方公共団体名, 名称_カナ, 備考" in err
    fields = ["name_ja", "lat", "lon", "address", "capacity", *(f"for_{h}" for h in SHELTER_HAZARDS)]
    for shelter in Shelter.objects.filter(municipality=towns[0]):
        original = before[shelter.code]
        assert [getattr(shelter, f) for f in fields] == [getattr(original, f) for f in fields], shelter.code
    assert Shelter.objects.get(code="990001-0001").name_en == "Mizumori Elementary School"


def test_the_command_reports_rows_and_refuses_unknown_towns_and_files(towns, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(dataset(ROWS[0], "990001,0003,town a,,,,,35.0,140.0,,,,,,,,,,,,"))
    out, err = run(path, "--dry-run")
    assert "dry run, nothing stored: would have shelters: 1 created" in out
    assert "line 3: skipped: 名称 is empty" in err
    report = json.loads(run(path, "--json")[0])
    assert report["created"] == 1 and report["rows_reported"] == [{"line": 3, "error": "名称 is empty", "notes": []}]
    with pytest.raises(CommandError, match="no such municipality"):
        run(path, "--municipality", "nowhere")
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "missing.csv")
    with pytest.raises(CommandError, match="not a known text encoding"):
        run(path, "--encoding", "bogus")


# --- the town admin's page ------------------------------------------------------------------------------


def admin_of(town, name, role=None):
    from django.contrib.auth import get_user_model

    from tenancy.models import Membership

    user = get_user_model().objects.create_user(name, password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=town, role=role or Membership.Role.ADMIN)
    return user


def test_a_town_admin_uploads_the_dataset_and_sees_the_report(client, towns):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_of(towns[0], "a-admin"))
    upload = SimpleUploadedFile("shelters.csv", dataset(*ROWS, "990001,0009,town a,,,,,35,140,,,,,,,,,,,,"))
    page = client.post("/hq/admin/shelters/", {"dataset": upload})
    assert page.status_code == 200
    text = page.content.decode()
    assert "新規2件" in text and "名称 is empty" in text and "belongs to town-b, not to town-a" in text
    assert sorted(Shelter.objects.values_list("code", flat=True)) == ["990001-0001", "990001-0002"]
    assert "水森小学校" in client.get("/hq/admin/shelters/").content.decode()
    download = client.get("/hq/admin/shelters/", {"format": "csv"})
    assert download["Content-Type"].startswith("text/csv")
    body = download.content.decode("utf-8-sig")
    assert "水森小学校" in body and "隣町" not in body  # only the acting town's shelters


def test_the_shelter_page_is_for_the_towns_admins_only(client, towns):
    from tenancy.models import Membership

    shelter_dataset_import(data=dataset(*ROWS))
    assert client.get("/hq/admin/shelters/").status_code == 302
    client.force_login(admin_of(towns[0], "a-operator", Membership.Role.OPERATOR))
    assert client.get("/hq/admin/shelters/", {"format": "csv"}).status_code == 403
    assert client.post("/hq/admin/shelters/", {"dataset": io.BytesIO(dataset(ROWS[0]))}).status_code == 403
    client.force_login(admin_of(towns[1], "b-admin"))
    assert "水森小学校" not in client.get("/hq/admin/shelters/", {"format": "csv"}).content.decode("utf-8-sig")


def test_a_bad_upload_is_a_clear_400_and_stores_nothing(client, towns):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_of(towns[0], "a-admin"))
    assert client.post("/hq/admin/shelters/", {}).status_code == 400
    garbage = SimpleUploadedFile("x.csv", b"\xff\xfe\x00\x81<script>")
    response = client.post("/hq/admin/shelters/", {"dataset": garbage})
    assert response.status_code == 400 and b"<script>" not in response.content
    assert not Shelter.objects.exists()
