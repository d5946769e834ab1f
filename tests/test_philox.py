"""Philox4x32-10 against Random123's known answers, the NumPy version against the scalar one, and the word scheme."""

from __future__ import annotations

import numpy as np
import pytest

from hmasd.envs.reference import (
    KNOWN_ANSWERS,
    EnvRng,
    bernoulli,
    philox4x32_10,
    philox4x32_10_np,
    uniform_float,
    uniform_int,
)

MASK32 = 0xFFFFFFFF


def test_known_answer_vectors_are_the_published_ones() -> None:
    assert len(KNOWN_ANSWERS) == 3
    assert KNOWN_ANSWERS[0] == ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8))


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_scalar_philox_known_answers(counter, key, expected) -> None:
    assert philox4x32_10(counter, key) == expected


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_numpy_philox_known_answers(counter, key, expected) -> None:
    out = philox4x32_10_np(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert out.dtype == np.uint32
    assert out.shape == (4,)
    assert tuple(int(x) for x in out) == expected


def test_numpy_philox_known_answers_batched() -> None:
    counters = np.array([c for c, _, _ in KNOWN_ANSWERS], dtype=np.uint32)
    keys = np.array([k for _, k, _ in KNOWN_ANSWERS], dtype=np.uint32)
    expected = np.array([e for _, _, e in KNOWN_ANSWERS], dtype=np.uint32)
    np.testing.assert_array_equal(philox4x32_10_np(counters, keys), expected)


def test_numpy_philox_equals_scalar_on_random_inputs() -> None:
    rng = np.random.default_rng(1234)
    counters = rng.integers(0, 2**32, size=(300, 4), dtype=np.uint64).astype(np.uint32)
    keys = rng.integers(0, 2**32, size=(300, 2), dtype=np.uint64).astype(np.uint32)
    out = philox4x32_10_np(counters, keys)
    assert out.shape == (300, 4)
    for counter, key, row in zip(counters, keys, out):
        assert tuple(int(x) for x in row) == philox4x32_10(tuple(map(int, counter)), tuple(map(int, key)))


def test_numpy_philox_broadcasts_one_key_over_many_counters() -> None:
    counters = np.arange(40, dtype=np.uint32).reshape(10, 4)
    key = np.array([7, 0xDEADBEEF], dtype=np.uint32)
    out = philox4x32_10_np(counters, key)
    for counter, row in zip(counters, out):
        assert tuple(int(x) for x in row) == philox4x32_10(tuple(map(int, counter)), (7, 0xDEADBEEF))


def test_scalar_philox_rejects_wrong_word_counts() -> None:
    with pytest.raises(ValueError, match="4 counter words and 2 key words"):
        philox4x32_10((0, 0, 0), (0, 0))


def test_uniform_int_edges_and_range() -> None:
    assert uniform_int(0, 7) == 0
    assert uniform_int(MASK32, 7) == 6
    assert uniform_int(0x80000000, 10) == 5
    assert uniform_int(123456789, 1) == 0
    counters = np.zeros((500, 4), dtype=np.uint32)
    counters[:, 0] = np.arange(500)
    words = philox4x32_10_np(counters, np.zeros(2, dtype=np.uint32)).reshape(-1)
    for n in (2, 3, 7, 64, 100):
        values = [uniform_int(int(w), n) for w in words]
        assert min(values) >= 0
        assert max(values) == n - 1


def test_uniform_int_is_roughly_uniform() -> None:
    rng = EnvRng(seed=2024, env_index=3)
    n, draws = 10, 20000
    counts = np.zeros(n, dtype=np.int64)
    for k in range(draws):
        counts[uniform_int(rng.word(episode=k // 100, t=k % 100, purpose=1, index=0), n)] += 1
    expected = draws / n
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    # 9 degrees of freedom: P(chi2 > 27.9) = 0.001, so a correct generator passes and a skewed one does not.
    assert chi_square < 27.9, counts


def test_uniform_float_is_exact_float32() -> None:
    assert uniform_float(0) == np.float32(0.0)
    assert uniform_float(0x80000000) == np.float32(0.5)
    assert uniform_float(MASK32) == np.float32(1.0 - 2.0**-24)
    assert uniform_float(0xFF) == np.float32(0.0)  # the low 8 bits are dropped
    assert isinstance(uniform_float(12345), np.float32)


def test_bernoulli_compares_in_float32() -> None:
    assert not any(bernoulli(w, 0.0) for w in (0, 1, 0x80000000, MASK32))
    assert all(bernoulli(w, 1.0) for w in (0, 1, 0x80000000, MASK32))
    assert not bernoulli(0x80000000, 0.5)  # 0.5 < 0.5 is false
    assert bernoulli(0x80000000 - 256, 0.5)
    # float32(0.5 + 0.4 * 2**-24) rounds down to 0.5: a double compare would say True, the C++ float compare False.
    assert not bernoulli(0x80000000, 0.5 + 0.4 * 2.0**-24)


def test_env_rng_word_follows_the_documented_layout() -> None:
    seed = (0x0123_4567 << 32) | 0x89AB_CDEF
    rng = EnvRng(seed, env_index=5)
    for episode, t, purpose, index in [(0, 0, 1, 0), (3, 17, 2, 1), (9, 4, 4, 6), (1, 2, 3, 11)]:
        counter = (t, episode, (purpose << 16) | (index >> 2), 0x0123_4567)
        expected = philox4x32_10(counter, (0x89AB_CDEF, 5))[index & 3]
        assert rng.word(episode, t, purpose, index) == expected


def test_env_rng_words_differ_along_every_coordinate() -> None:
    base = EnvRng(7, 0).word(0, 0, 1, 0)
    variants = {
        "env_index": EnvRng(7, 1).word(0, 0, 1, 0),
        "seed": EnvRng(8, 0).word(0, 0, 1, 0),
        "seed_high_bits": EnvRng(7 + 2**32, 0).word(0, 0, 1, 0),
        "episode": EnvRng(7, 0).word(1, 0, 1, 0),
        "t": EnvRng(7, 0).word(0, 1, 1, 0),
        "purpose": EnvRng(7, 0).word(0, 0, 2, 0),
        "index_same_block": EnvRng(7, 0).word(0, 0, 1, 1),
        "index_next_block": EnvRng(7, 0).word(0, 0, 1, 4),
    }
    for name, word in variants.items():
        assert word != base, name
    assert len(set(variants.values())) == len(variants)


def test_env_rng_rejects_out_of_range_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        EnvRng(-1, 0)
    with pytest.raises(ValueError, match="seed"):
        EnvRng(2**64, 0)


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_native_philox_known_answers(counter, key, expected) -> None:
    from hmasd import _native

    assert tuple(_native.philox4x32_10(counter, key)) == expected
