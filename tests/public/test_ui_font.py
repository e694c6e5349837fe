"""The pages' web font (issue 15, point 7): a WOFF2 subset of IPAex Gothic that covers every character
the UI's own text uses, renamed as the IPA Font License requires of a derived font, vendored with the
licence, and named in the stylesheet after the system's Japanese fonts with font-display: swap."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FONTS = ROOT / "static" / "fonts"


def make_ui_font():
    """bin/make-ui-font as a module (a script without the .py suffix)."""
    path = str(ROOT / "bin" / "make-ui-font")
    loader = importlib.machinery.SourceFileLoader("make_ui_font", path)
    spec = importlib.util.spec_from_loader("make_ui_font", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def font_script():
    return make_ui_font()


@pytest.fixture(scope="module")
def subset(font_script):
    from fontTools.ttLib import TTFont

    return TTFont(font_script.TARGET)


def test_the_subset_is_woff2_next_to_its_licence_and_original(font_script):
    target = font_script.TARGET
    assert target.read_bytes()[:4] == b"wOF2"
    assert "ipa" not in target.name.lower()  # the licence: not the original's name, not even in the file's
    assert (FONTS / "IPAexGothic-LICENSE.txt").exists() and (FONTS / "ipaexg.ttf").exists()
    assert target.name in (FONTS / "README.md").read_text()
    # Small enough for a kiosk on a slow line (the full font is 6 MB).
    assert target.stat().st_size < 1_500_000


def test_the_subset_carries_its_own_name_not_the_originals(subset, font_script):
    for record in subset["name"].names:
        if record.nameID in (1, 3, 4, 6, 16, 17, 18, 21, 22):
            assert "ipa" not in record.toUnicode().lower(), record
    assert subset["name"].getDebugName(1) == font_script.FAMILY


def test_every_character_the_ui_uses_is_in_the_subset(font_script):
    missing = font_script.missing_characters()
    assert not missing, f"run bin/make-ui-font: missing {''.join(sorted(missing))}"


def test_the_scan_sees_the_level_words_and_the_page_strings(font_script):
    characters = font_script.ui_characters()
    for word in ("警戒レベル", "相当", "最寄りの開設中の避難所", "最終更新", "分前"):
        assert set(word) <= characters, word


def test_the_stylesheet_uses_it_after_the_system_japanese_fonts_with_swap(font_script):
    css = (ROOT / "static" / "mizumori" / "site.css").read_text()
    face = re.search(r"@font-face\s*{([^}]*)}", css).group(1)
    assert f'"{font_script.FAMILY}"' in face and "font-display: swap" in face
    assert f"../fonts/{font_script.TARGET.name}" in face
    stack = re.search(r"body\s*{[^}]*font-family:([^;]*);", css).group(1)
    assert stack.index('"Noto Sans JP"') < stack.index(f'"{font_script.FAMILY}"')
    assert stack.strip().endswith("sans-serif")
