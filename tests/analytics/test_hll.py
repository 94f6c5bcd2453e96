"""HyperLogLog sketches of unique viewers.

Real: the sketch code, on hashes drawn from a seeded generator (the same draws every run) and on
sequential numbers (what weak hashes look like). No database.
"""

from __future__ import annotations

import numpy as np
import pytest

from ironbowl.analytics.hll import REGISTERS, Sketch


def _hashes(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-(2**63), 2**63 - 1, size=count, dtype=np.int64)


@pytest.mark.parametrize(
    ("distinct", "tolerance"),
    # Standard error 1.6 %: 5 % is three of them; small counts are near exact (linear counting).
    [(10, 0.0), (1_000, 0.02), (100_000, 0.05)],
)
def test_estimates_are_within_a_few_percent_of_the_truth(distinct, tolerance):
    for sketch in (Sketch.of(_hashes(distinct, seed=distinct)), Sketch.of(range(distinct))):
        assert abs(sketch.count() - distinct) <= tolerance * distinct


def test_repeats_count_once():
    """Each viewer seen ten times, in any order, counts once; adding everything again changes no
    register."""
    hashes = _hashes(5_000, seed=1)
    repeated = np.random.default_rng(2).permutation(np.tile(hashes, 10))
    once = Sketch.of(hashes)
    assert Sketch.of(repeated) == once
    again = Sketch.of(hashes)
    again.add(hashes)
    again.add(list(map(int, hashes[:100])))
    assert again == once


def test_merging_equals_the_sketch_of_the_union():
    """Two hours sharing a thousand viewers merge into their day: the register-wise maximum is
    exactly the sketch of everyone, and the estimate counts the shared viewers once."""
    everyone = _hashes(9_000, seed=3)
    morning, evening = everyone[:5_000], everyone[4_000:]
    day = Sketch.union([Sketch.of(morning), Sketch.of(evening)])
    assert day == Sketch.of(everyone)
    assert abs(day.count() - 9_000) <= 0.05 * 9_000


def test_an_empty_sketch_counts_nothing_and_stores_nothing():
    empty = Sketch.of([])
    assert empty.count() == 0
    assert empty.to_bytes() == b""
    assert Sketch.from_bytes(b"") == empty
    assert Sketch.from_bytes(memoryview(b"")) == empty


def test_a_sketch_survives_storage():
    """What a Rollup row stores is the sketch, register for register (PostgreSQL hands the
    column back as a memoryview)."""
    sketch = Sketch.of(_hashes(50_000, seed=4))
    stored = sketch.to_bytes()
    assert len(stored) < REGISTERS  # deflated
    assert Sketch.from_bytes(stored) == sketch
    assert Sketch.from_bytes(memoryview(stored)) == sketch


@pytest.mark.parametrize("damaged", [b"\x02\x0cxyz", b"\x01\x0bxyz", b"\x01\x0cnot zlib"])
def test_damaged_bytes_are_refused(damaged):
    with pytest.raises(ValueError):
        Sketch.from_bytes(damaged)


def test_unsigned_and_signed_forms_of_a_hash_are_the_same_viewer():
    """The database stores 64-bit hashes signed; a client library may hold them unsigned."""
    signed = _hashes(1_000, seed=5)
    assert Sketch.of(signed.view(np.uint64)) == Sketch.of(signed)
