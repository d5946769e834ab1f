"""Env snapshots name their env, options and sizes and carry a checksum; a restore refuses, before anything changes,
a snapshot of other options, a damaged one, and a forged one whose state no env reaches (issue 14 findings 2, 3)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from snapshot_layout import fnv1a64, sealed, sizes_block

ALL_ENVS = hmasd.envs.registered_envs()


def reseal(blob: bytes | bytearray) -> bytes:
    """The blob with its checksum recomputed: what a forger (or a bug elsewhere) could produce."""
    return sealed(bytes(blob[:-8]))


def stepped(name: str, steps: int = 30, **options):
    env = hmasd.envs.make(name, num_envs=3, seed=2, **options)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        env.step(hmasd.envs.random_actions(env, rng))
    return env


@pytest.mark.parametrize("name", ALL_ENVS)
def test_a_snapshot_restores_exactly_and_checks_its_own_state(name):
    env = stepped(name)
    blob = env._native.snapshot()
    assert blob[:8] == b"HMASDSNP" and struct.unpack("<Q", blob[-8:])[0] == fnv1a64(blob[:-8])
    twin = hmasd.envs.make(name, num_envs=3, seed=2)
    twin._native.restore(blob)
    np.testing.assert_array_equal(twin.obs, env.obs)
    assert twin._native.snapshot() == blob


@pytest.mark.parametrize("name, mine, theirs, option", [
    ("alice_and_bob", {"height": 20, "width": 10}, {"height": 10, "width": 20}, "height"),
    ("stag_hunt", {"grid_size": 8}, {"grid_size": 5}, "grid_size"),
    ("uav_coverage", {"num_users": 40}, {"num_users": 41}, "num_users"),
    ("stag_hunt", {"hare_reward": 1.0}, {"hare_reward": 2.0}, "hare_reward"),
])
def test_a_snapshot_of_other_options_is_refused_naming_the_option(name, mine, theirs, option):
    source = stepped(name, **mine)
    target = hmasd.envs.make(name, num_envs=3, seed=2, **theirs)
    target.reset()
    before = target._native.snapshot()
    with pytest.raises(ValueError, match=f"made with {option}="):
        target._native.restore(source._native.snapshot())
    assert target._native.snapshot() == before


def test_a_snapshot_of_another_env_or_size_is_refused():
    stag = stepped("stag_hunt")
    with pytest.raises(ValueError, match="is of env 'stag_hunt', not 'alice_and_bob'"):
        hmasd.envs.make("alice_and_bob", num_envs=3)._native.restore(stag._native.snapshot())
    with pytest.raises(ValueError, match="num_envs=3, this env 4"):
        hmasd.envs.make("stag_hunt", num_envs=4)._native.restore(stag._native.snapshot())
    with pytest.raises(ValueError, match="not an hmasd env snapshot"):
        stag._native.restore(b"pickle me")


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 400), length=st.integers(1, 64), value=st.integers(0, 255))
def test_damaged_bytes_are_refused_by_the_checksum(start, length, value):
    env = stepped("stag_hunt", steps=5)
    blob = bytearray(env._native.snapshot())
    start = start % (len(blob) - 8)
    damaged = blob[:start] + bytes([value]) * length + blob[start + length:]
    damaged = damaged[:len(blob)]
    before = env._native.snapshot()
    if bytes(damaged) == bytes(blob):
        env._native.restore(bytes(damaged))
    else:
        with pytest.raises(ValueError, match="damaged|not an hmasd|truncated"):
            env._native.restore(bytes(damaged))
    assert env._native.snapshot() == before


def state_offset(blob: bytes) -> int:
    """Where the state arrays start: after the header, the seed (8 bytes) and the has_reset flag (1 byte)."""
    at = sizes_block(blob)
    (sizes,) = struct.unpack_from("<I", blob, at)
    return at + 4 + 4 * sizes + 8 + 1


@settings(max_examples=80, deadline=None)
@given(index=st.integers(0, 10_000), value=st.sampled_from([0x7F7F7F7F, 0x80000000, 999, -5 & 0xFFFFFFFF, 2]))
def test_forged_states_are_refused_or_stepped_safely(index, value):
    """A resealed snapshot with one int32 of the state arrays overwritten: refused with a message naming the
    problem, or (a value an env can hold there) accepted and stepped to finite observations."""
    env = stepped("stag_hunt", steps=5)
    blob = bytearray(env._native.snapshot())
    begin = state_offset(bytes(blob))
    at = begin + 4 * (index % ((len(blob) - 8 - begin) // 4))
    blob[at:at + 4] = struct.pack("<I", value)
    target = hmasd.envs.make("stag_hunt", num_envs=3, seed=2)
    target.reset()
    before = target._native.snapshot()
    try:
        target._native.restore(reseal(blob))
    except ValueError as error:
        assert "no env reaches" in str(error) or "flag byte" in str(error) or "non-finite" in str(error) \
            or "episode length" in str(error), error
        assert target._native.snapshot() == before
        return
    for _ in range(3):
        target.step(np.full((3, 4), 4, np.int32))
    assert np.isfinite(target.obs).all() and np.abs(target.obs).max() <= 1.0


def test_the_reported_forgeries_are_refused():
    # findings 2 and 3 of issue 14: positions far off the grid, and 0x7f over the agents' rows
    env = stepped("stag_hunt", steps=5)
    blob = bytearray(env._native.snapshot())
    begin = state_offset(bytes(blob))
    blob[begin:begin + 64] = b"\x7f" * 64
    with pytest.raises(ValueError, match="env 0 has agent_row = .* outside \\[0, 7\\]"):
        env._native.restore(reseal(blob))
    alice = stepped("alice_and_bob", steps=5)
    blob = bytearray(alice._native.snapshot())
    begin = state_offset(bytes(blob))
    blob[begin + 16:begin + 17] = b"\x05"  # collected[0] of env 0: a bool byte that is neither 0 nor 1
    with pytest.raises(ValueError, match="collected = 5 outside \\[0, 1\\]"):
        alice._native.restore(reseal(blob))
