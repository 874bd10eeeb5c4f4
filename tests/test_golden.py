"""Restructure guard: every door still draws (and ports) exactly the recorded bits.

See tests/golden.py for the models and doors, and how the record is rewritten
when values change on purpose (always with a CHANGELOG.md entry).
"""

from __future__ import annotations

import json

import golden
import jax
import pytest

import jaxinit


@pytest.fixture(scope="module")
def record() -> dict[str, dict[str, str]]:
    with open(golden.GOLDEN) as f:
        return json.load(f)


def test_every_door_is_recorded(record):
    assert sorted(record) == sorted(golden.doors())


@pytest.mark.parametrize("door", sorted(golden.doors()))
def test_door_is_bit_identical(record, door):
    got = golden.door_digests(door)
    want = record[door]
    assert sorted(got) == sorted(want), f"{door}: the leaves changed"
    changed = golden.changed(got, want)
    assert not changed, f"{door}: values changed in {changed}"


def test_factorized_leaves_are_compared_by_value(record):
    """A factorized leaf is recorded as values, and a changed key moves them beyond the tolerance."""
    for door, paths in golden.FACTORIZED.items():
        for path in paths:
            assert isinstance(record[door][path], dict), (door, path)
    w = jaxinit.orthogonal()(jax.random.key(0), (5, 7))
    other = jaxinit.orthogonal()(jax.random.key(1), (5, 7))
    want = golden.digests({"w": w}, {"['w']"})
    assert golden.changed(golden.digests({"w": w * (1 + 1e-7)}, {"['w']"}), want) == []
    assert golden.changed(golden.digests({"w": other}, {"['w']"}), want) == ["['w']"]
