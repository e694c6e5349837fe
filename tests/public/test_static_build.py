"""Production's static files: content-hashed names in every page, served as immutable; the fixed URLs
(the service worker, the scripts' translations, the public base map) carrying the front-end build
(config/build.py), which follows the files. The test process itself renders unhashed names
(tests/conftest.py `static_files_under_their_own_names` says why); here a collectstatic of the test's
own gives production's storage its manifest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles.finders import get_finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils.module_loading import import_string

import config.settings as production
from config import build
from config.build import front_end_build
from public.tick_cache import forget_all

pytestmark = pytest.mark.django_db

HASH = r"[0-9a-f]{12}"


@pytest.fixture(autouse=True)
def calm_machine(settings):
    settings.PUBLIC_MINIMAL_CPU_LOAD = 10**6


@pytest.fixture(scope="module")
def production_static(tmp_path_factory):
    """Production's storage over a collectstatic of this module's own. Nothing is precompressed here
    (every extension skipped): WhiteNoise's Brotli over every file is a minute of CPU that tells
    nothing about the names, while hashing them takes seconds."""
    extensions = {Path(path).suffix.lstrip(".") for finder in get_finders() for path, _ in finder.list([])}
    with override_settings(
        STORAGES=production.STORAGES,
        STATIC_ROOT=tmp_path_factory.mktemp("static"),
        WHITENOISE_SKIP_COMPRESS_EXTENSIONS=sorted(extensions - {""}),
    ):
        call_command("collectstatic", interactive=False, verbosity=0)
        build.forget()
        yield
    build.forget()


@pytest.fixture(autouse=True)
def no_public_build_of_another_storage():
    """The public page's builds name static files: none made under another test's storage."""
    forget_all()
    yield
    forget_all()


def test_production_storage_hashes_the_names():
    backend = import_string(production.STORAGES["staticfiles"]["BACKEND"])
    assert issubclass(backend, ManifestFilesMixin)


def test_the_pages_name_hashed_files_served_immutable_and_fixed_urls_carry_the_build(
    production_static,
    stations,
    user_a,
):
    current = front_end_build()
    client = Client()
    shell = client.get("/?lang=ja").content.decode()
    for name in ("mizumori/public", "mizumori/live", "mizumori/stations", "mizumori/i18n", "mizumori/site"):
        assert re.search(rf'"/static/{name}\.{HASH}\.(js|css)"', shell), name
        assert not re.search(rf'"/static/{name}\.(js|css)"', shell), name
    # The preloaded map library too (geo.maps resolves it with static()).
    assert re.search(rf'"/static/vendor/leaflet/leaflet\.{HASH}\.js"', shell)
    # Fixed URLs: the worker under its own name with the build; the catalog and base map with it.
    assert f'data-service-worker="/static/mizumori/service-worker.js?build={current}"' in shell
    assert f'src="/i18n/catalog/ja.js?v={current}"' in shell
    assert f'data-basemap-url="/public/basemap.js?lang=ja&amp;v={current}"' in shell

    client.force_login(user_a)
    hq = client.get("/hq/").content.decode()
    assert re.search(rf'"/static/mizumori/live\.{HASH}\.js"', hq)
    assert f"/i18n/catalog/ja.js?v={current}" in hq

    hashed = re.search(rf'"(/static/mizumori/public\.{HASH}\.js)"', shell).group(1)
    response = Client().get(hashed)
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"] and "max-age=315360000" in response["Cache-Control"]
    worker = Client().get(f"/static/mizumori/service-worker.js?build={current}")
    assert worker.status_code == 200
    assert worker["Service-Worker-Allowed"] == "/" and worker["Cache-Control"] == "public, max-age=60"


def test_the_build_is_the_manifests_and_follows_the_files(production_static, tmp_path):
    with_manifest = front_end_build()
    # Without hashed names (DEBUG, the tests) the files themselves decide it: another file, another build.
    with override_settings(DEBUG=True):
        build.forget()
        unhashed = front_end_build()
        extra = tmp_path / "extra-static"
        extra.mkdir()
        (extra / "one.js").write_text("1")
        with override_settings(STATICFILES_DIRS=[*production.STATICFILES_DIRS, extra]):
            build.forget()
            first = front_end_build()
            (extra / "one.js").write_text("2")
            build.forget()
            second = front_end_build()
    assert len({with_manifest, unhashed, first, second}) == 4


def test_without_a_manifest_the_names_stay_unhashed_and_a_warning_says_so(tmp_path, caplog, monkeypatch):
    from django.templatetags.static import static

    from config.staticfiles import StaticFilesStorage

    monkeypatch.setattr(StaticFilesStorage, "warned", False)
    with override_settings(STORAGES=production.STORAGES, STATIC_ROOT=tmp_path):
        assert static("mizumori/public.js") == "/static/mizumori/public.js"
        assert static("mizumori/live.js") == "/static/mizumori/live.js"
    warnings = [record for record in caplog.records if "No staticfiles manifest" in record.getMessage()]
    assert len(warnings) == 1
