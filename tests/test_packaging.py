"""What a published package needs: licence, metadata, extras, and a changelog."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def test_the_licence_is_apache_2_and_ships_in_the_wheel():
    assert PROJECT["license"] == "Apache-2.0", PROJECT["license"]
    assert PROJECT.get("license-files") == ["LICENSE"], PROJECT.get("license-files")
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"], text[:80]
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a stub


def test_metadata_for_an_index():
    assert PROJECT.get("authors"), "pyproject.toml: [project] authors is empty"
    classifiers = PROJECT.get("classifiers", [])
    assert "Typing :: Typed" in classifiers and (ROOT / "jaxinit" / "py.typed").is_file()
    low = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert low, PROJECT["requires-python"]
    assert f"Programming Language :: Python :: 3.{low.group(1)}" in classifiers, classifiers
    # no licence classifier next to an SPDX license expression (PEP 639 forbids both)
    assert not [c for c in classifiers if c.startswith("License ::")], classifiers


def test_extras():
    extras = {
        name: {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0] for r in reqs}
        for name, reqs in PROJECT["optional-dependencies"].items()
    }
    assert {"flax", "equinox", "torch", "safetensors", "port", "test", "docs"} <= set(extras)
    assert extras["equinox"] == {"equinox"}
    assert extras["safetensors"] == {"safetensors", "numpy"}
    assert {"torch", "safetensors"} <= extras["port"]
    assert "safetensors>=0.4" in PROJECT["optional-dependencies"]["safetensors"]
    assert "equinox>=0.12" in PROJECT["optional-dependencies"]["equinox"]


def test_tools_target_the_oldest_supported_python():
    minor = PROJECT["requires-python"].removeprefix(">=3.")
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"3.{minor}"


def test_changelog_has_an_unreleased_section_with_a_place_for_drawn_value_changes():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert versions[:2] == ["Unreleased", PROJECT["version"]], versions
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    assert "### Changed (drawn values)" in unreleased, unreleased[:300]
