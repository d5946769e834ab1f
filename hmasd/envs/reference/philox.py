"""Philox4x32-10 counter-based generator and the per-env word scheme of docs/envs.md, in plain Python and NumPy.

Reference code for the tests: it favours being obviously correct over speed.
"""

from __future__ import annotations

import numpy as np

MASK32 = 0xFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10

Counter = tuple[int, int, int, int]
Key = tuple[int, int]

# Random123's published known-answer vectors for Philox4x32-10 (kat_vectors): (counter, key, expected output).
KNOWN_ANSWERS: list[tuple[Counter, Key, Counter]] = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _mulhilo(a: int, b: int) -> tuple[int, int]:
    product = (a * b) & 0xFFFFFFFFFFFFFFFF
    return product >> 32, product & MASK32


def philox4x32_10(counter: tuple[int, ...], key: tuple[int, ...]) -> Counter:
    """Philox4x32 with 10 rounds on one counter; every word is taken modulo 2**32."""
    if len(counter) != 4 or len(key) != 2:
        raise ValueError(f"philox4x32_10 needs 4 counter words and 2 key words, got {len(counter)} and {len(key)}")
    c0, c1, c2, c3 = (int(x) & MASK32 for x in counter)
    k0, k1 = (int(x) & MASK32 for x in key)
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox4x32_10_np(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Vectorised philox4x32_10: counter uint32[..., 4], key uint32[..., 2] (broadcast) -> uint32[..., 4]."""
    counter = np.asarray(counter)
    key = np.asarray(key)
    if counter.shape[-1:] != (4,) or key.shape[-1:] != (2,):
        raise ValueError(f"expected counter [..., 4] and key [..., 2], got {counter.shape} and {key.shape}")
    # uint64 holds the full 32 x 32 -> 64 bit product, so hi/lo halves come out exact.
    c = counter.astype(np.uint64) & np.uint64(MASK32)
    k = key.astype(np.uint64) & np.uint64(MASK32)
    c0, c1, c2, c3 = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    k0, k1 = k[..., 0], k[..., 1]
    mask = np.uint64(MASK32)
    shift = np.uint64(32)
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:
            k0 = (k0 + np.uint64(PHILOX_W0)) & mask
            k1 = (k1 + np.uint64(PHILOX_W1)) & mask
        p0 = np.uint64(PHILOX_M0) * c0
        p1 = np.uint64(PHILOX_M1) * c2
        c0, c1, c2, c3 = (p1 >> shift) ^ c1 ^ k0, p1 & mask, (p0 >> shift) ^ c3 ^ k1, p0 & mask
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def uniform_int(w: int, n: int) -> int:
    """Integer in [0, n) from one 32-bit word by the multiply-shift of docs/envs.md."""
    if not 0 < n <= MASK32:
        raise ValueError(f"uniform_int needs 0 < n < 2**32, got n={n}")
    return ((int(w) & MASK32) * n) >> 32


def uniform_float(w: int) -> np.float32:
    """float32 in [0, 1) from the top 24 bits of a word."""
    # 24 bits fit a float32 mantissa and 2**-24 is a power of two, so both steps are exact.
    return np.float32((int(w) & MASK32) >> 8) * np.float32(2.0**-24)


def bernoulli(w: int, p: float) -> bool:
    """True with probability p: the float32 compare of C++ `float(w >> 8) * 0x1p-24f < float(p)`."""
    return bool(uniform_float(w) < np.float32(p))


class EnvRng:
    """The random words of one env copy `env_index` of a batch created with `seed` (docs/envs.md)."""

    def __init__(self, seed: int, env_index: int) -> None:
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        if not 0 <= env_index <= MASK32:
            raise ValueError(f"env_index must be in [0, 2**32), got {env_index}")
        self.seed = int(seed)
        self.env_index = int(env_index)

    def word(self, episode: int, t: int, purpose: int, index: int) -> int:
        if min(episode, t, purpose, index) < 0:
            raise ValueError(f"word() arguments must be non-negative, got {episode=}, {t=}, {purpose=}, {index=}")
        counter = (
            t & MASK32,
            episode & MASK32,
            ((purpose << 16) | (index >> 2)) & MASK32,
            self.seed >> 32,
        )
        key = (self.seed & MASK32, self.env_index)
        return philox4x32_10(counter, key)[index & 3]
