"""Restructure guard: every door still draws (and ports) exactly the recorded bits.

See tests/golden.py for the models and doors, and how the record is rewritten
when values change on purpose (always with a CHANGELOG.md entry).
"""

from __future__ import annotations

import json

import golden
import pytest


@pytest.fixture(scope="module")
def record() -> dict[str, dict[str, str]]:
    with open(golden.GOLDEN) as f:
        return json.load(f)


def test_every_door_is_recorded(record):
    assert sorted(record) == sorted(golden.doors())


@pytest.mark.parametrize("door", sorted(golden.doors()))
def test_door_is_bit_identical(record, door):
    got = golden.digests(golden.doors()[door]())
    want = record[door]
    assert sorted(got) == sorted(want), f"{door}: the leaves changed"
    changed = [path for path in want if got[path] != want[path]]
    assert not changed, f"{door}: values changed in {changed}"
