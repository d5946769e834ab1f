"""`first_env`: a batch whose copies are numbered from k steps exactly like rows k.. of one larger batch of the same
seed (distributed ranks each own a slice of one global batch), matches the NumPy reference built at env indices
k + e, survives pickling, and is part of a snapshot's identity."""

from __future__ import annotations

import copy
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hmasd.envs
from conftest import ENV_NAMES, gpu_marks, random_actions
from hmasd import _native
from hmasd.envs.reference import ReferenceVecEnv
from snapshot_layout import sealed, sizes_block

U32 = 2**32

# Every registered env, uav_coverage with both action types; episodes short enough that a few hundred steps cross
# many auto-resets.
SHORT = {"alice_and_bob": {"max_steps": 40}, "stag_hunt": {}, "uav_coverage": {"max_steps": 40}}
ENV_CASES = [(name, SHORT.get(name, {})) for name in ENV_NAMES]
if "action_type" in hmasd.envs.option_table("uav_coverage"):
    ENV_CASES.append(("uav_coverage", {"max_steps": 40, "action_type": "discrete"}))
CASE_IDS = [f"{name}-{options.get('action_type', 'default')}" for name, options in ENV_CASES]

BUFFERS = ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "final_obs", "final_state",
           "episode_return", "episode_length")


def assert_rows_equal(whole, part, rows: slice, where: str) -> None:
    """Every buffer of `part` equals rows `rows` of `whole` (final_* included: both start at zero and are rewritten
    by the same per-env rule, so even the rows of envs that did not end agree)."""
    for key in BUFFERS:
        np.testing.assert_array_equal(getattr(part, key), getattr(whole, key)[rows], err_msg=f"{key}, {where}")
    for key, values in whole.episode_info.items():
        np.testing.assert_array_equal(part.episode_info[key], values[rows], err_msg=f"info {key}, {where}")


@pytest.mark.parametrize("autoreset", ["same_step", "next_step", "disabled"])
@pytest.mark.parametrize("name, options", ENV_CASES, ids=CASE_IDS)
def test_slices_step_exactly_like_one_batch(name, options, autoreset):
    seed = 2**33 + 5
    whole = hmasd.envs.make(name, num_envs=8, seed=seed, autoreset=autoreset, **options)
    # (rows of the whole batch, the batch made of just those rows)
    slices = [(slice(start, stop), hmasd.envs.make(name, num_envs=stop - start, seed=seed, autoreset=autoreset,
                                                   first_env=start, **options))
              for start, stop in ((0, 4), (4, 8), (5, 8))]
    assert [part.first_env for _, part in slices] == [0, 4, 5] and whole.first_env == 0

    def on_all(call) -> None:
        call(whole, slice(None))
        for rows, part in slices:
            call(part, rows)

    def check(where: str) -> None:
        for rows, part in slices:
            assert_rows_equal(whole, part, rows, f"rows {rows.start}..{rows.stop - 1}, {where}")

    on_all(lambda env, rows: env.reset())
    check("after reset()")
    # the slices are not all one stream: rows 4..7 start elsewhere than rows 0..3
    assert not np.array_equal(whole.state[:4], whole.state[4:])
    rng = np.random.default_rng(17)
    ended_total = 0
    for t in range(300):
        if t == 120:
            on_all(lambda env, rows: env.reset())
            check(f"reset() at step {t}")
            continue
        if t == 200:
            on_all(lambda env, rows: env.reset(seed=99))
            check(f"reset(seed=99) at step {t}")
            continue
        ended = whole.terminated | whole.truncated
        chosen = ended if autoreset == "disabled" else np.zeros(8, dtype=bool)
        if rng.random() < 0.05:  # running envs reset mid-episode too
            chosen = chosen | (rng.random(8) < 0.4)
        if chosen.any():
            on_all(lambda env, rows: env.reset_envs(chosen[rows].copy()))
            check(f"reset_envs({np.flatnonzero(chosen).tolist()}) at step {t}")
            continue
        actions = random_actions(whole, rng)  # valid under the whole batch's action mask, so under each slice's
        on_all(lambda env, rows: env.step(actions[rows].copy()))
        check(f"step {t}")
        ended_total += int((whole.terminated | whole.truncated).sum())
    assert ended_total > 8, "the run crossed too few episode ends to test auto-resets"
    # the two halves' episode statistics, summed by episode_stats(reduce=...) as ranks would, are the whole batch's
    second_half: list[np.ndarray] = []
    slices[1][1].episode_stats(reduce=lambda sums: second_half.append(sums.copy()) or sums)
    combined = slices[0][1].episode_stats(reduce=lambda sums: sums + second_half[0])
    stats = whole.episode_stats()
    assert combined.keys() == stats.keys() and combined["episodes"] == stats["episodes"] > 0
    for key in stats:
        np.testing.assert_allclose(combined[key], stats[key], rtol=1e-9, err_msg=key)


REFERENCE_CASES = [
    ("alice_and_bob", {"height": 5, "width": 7, "max_steps": 30}),
    ("stag_hunt", {"grid_size": 5, "num_agents": 3, "num_hares": 2}),
    ("uav_coverage", {"num_uavs": 3, "num_users": 16, "max_steps": 20}),
    ("uav_coverage", {"num_uavs": 3, "num_users": 16, "max_steps": 20, "action_type": "discrete"}),
]


@pytest.mark.parametrize("first_env", [1000, U32 - 3])  # the top of the uint32 range too
@pytest.mark.parametrize("name, options", REFERENCE_CASES,
                         ids=[f"{n}-{o.get('action_type', 'default')}" for n, o in REFERENCE_CASES])
def test_native_slice_equals_the_reference_at_the_same_env_indices(name, options, first_env):
    seed, steps = 31, 80
    native = hmasd.envs.make(name, num_envs=3, seed=seed, first_env=first_env, **options)
    reference = ReferenceVecEnv(name, 3, seed=seed, first_env=first_env, **options)
    assert [env.rng.env_index for env in reference.envs] == [first_env + e for e in range(3)]
    # uav_coverage's radio runs through different libm calls on the two sides (tests/test_uav_native_vs_reference.py)
    atol = 2e-6 if name == "uav_coverage" else 0.0
    native.reset()
    reference.reset()
    rng = np.random.default_rng(3)
    ended = 0
    for t in range(steps + 1):
        if t == steps // 2:  # a seeded reset rekeys every copy at its own env index
            native.reset(seed=seed + 1)
            reference.reset(seed=seed + 1)
        for key in ("obs", "state", "rewards"):
            np.testing.assert_allclose(getattr(native, key), getattr(reference, key), rtol=0, atol=atol,
                                       err_msg=f"{key} at step {t}")
        for key in ("terminated", "truncated", "episode_length"):
            np.testing.assert_array_equal(getattr(native, key), getattr(reference, key), err_msg=f"{key}, step {t}")
        if name != "uav_coverage":  # its reference masks no move (its own tests compare only shapes)
            np.testing.assert_array_equal(native.action_mask, reference.action_mask)
        done = native.terminated | native.truncated
        ended += int(done.sum())
        np.testing.assert_allclose(native.final_obs[done], reference.final_obs[done], rtol=0, atol=atol)
        actions = random_actions(native, rng)
        native.step(actions)
        reference.step(actions)
    assert ended > 0
    # and not the streams of env indices 0..2
    other = hmasd.envs.make(name, num_envs=3, seed=seed, **options)
    other.reset(seed=seed + 1)
    again = hmasd.envs.make(name, num_envs=3, seed=seed, first_env=first_env, **options)
    again.reset(seed=seed + 1)
    assert not np.array_equal(other.state, again.state)


@pytest.mark.parametrize("bad, error, words", [
    (-1, ValueError, r"first_env must be in \[0, 4294967292\].*got -1"),
    (U32 - 3, ValueError, r"2\*\*32.*num_envs=4\).*got 4294967293"),
    (U32, ValueError, r"got 4294967296"),
    (4.0, TypeError, r"first_env must be an int, got 4\.0"),
    (True, TypeError, r"first_env must be an int, got True"),
    (np.bool_(False), TypeError, r"first_env must be an int"),
    ("4", TypeError, r"first_env must be an int"),
    (None, TypeError, r"first_env must be an int"),
])
def test_a_bad_first_env_is_refused_by_make(bad, error, words):
    with pytest.raises(error, match=words):
        hmasd.envs.make("stag_hunt", num_envs=4, first_env=bad)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_the_native_pools_check_first_env_before_building_anything(name):
    config = hmasd.envs.registry.build_config(name, {})
    native_class = getattr(_native, hmasd.envs.registry.entry(name).native_class_name(config))
    with pytest.raises(ValueError, match=r"first_env \+ num_envs must not exceed 2\*\*32.*first_env=4294967293 and "
                                         r"num_envs=4"):
        native_class(config, 4, 0, 1, "same_step", U32 - 3)
    for bad in (-1, U32):
        with pytest.raises(ValueError, match=rf"first_env must be in \[0, 2\*\*32 - 1\], got {bad}"):
            native_class(config, 4, 0, 1, "same_step", first_env=bad)
    top = native_class(config, 4, 0, 1, "same_step", first_env=U32 - 4)
    assert top.first_env == U32 - 4 and native_class(config, 4).first_env == 0
    with pytest.raises(AttributeError):
        top.first_env = 0  # read-only


@settings(max_examples=40, deadline=None)
@given(num_envs=st.integers(1, 6), first_env=st.one_of(st.integers(-3, 10), st.integers(U32 - 10, U32 + 3),
                                                        st.integers(-2**70, 2**70)))
def test_make_accepts_exactly_the_first_envs_that_keep_every_index_a_uint32(num_envs, first_env):
    if 0 <= first_env <= U32 - num_envs:
        env = hmasd.envs.make("alice_and_bob", num_envs=num_envs, seed=4, first_env=first_env)
        assert env.first_env == first_env
        env.reset()
        # its last copy is copy 0 of a one-copy batch at that copy's own index
        last = hmasd.envs.make("alice_and_bob", num_envs=1, seed=4, first_env=first_env + num_envs - 1)
        last.reset()
        np.testing.assert_array_equal(env.state[-1:], last.state)
    else:
        with pytest.raises(ValueError, match="first_env must be in"):
            hmasd.envs.make("alice_and_bob", num_envs=num_envs, seed=4, first_env=first_env)


def test_the_reference_batch_refuses_a_first_env_out_of_range():
    with pytest.raises(ValueError, match="first_env"):
        ReferenceVecEnv("stag_hunt", 4, first_env=U32 - 3)
    with pytest.raises(ValueError, match="first_env"):
        ReferenceVecEnv("stag_hunt", 4, first_env=-1)


@pytest.mark.parametrize("name, options", ENV_CASES, ids=CASE_IDS)
def test_pickling_and_copying_keep_first_env_and_the_trajectory(name, options):
    env = hmasd.envs.make(name, num_envs=3, seed=8, first_env=5, **options)
    whole = hmasd.envs.make(name, num_envs=8, seed=8, **options)
    env.reset()
    whole.reset()
    rng = np.random.default_rng(1)
    for _ in range(50):
        actions = random_actions(whole, rng)
        env.step(actions[5:].copy())
        whole.step(actions)
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    for clone in clones:
        assert clone.first_env == 5
    for t in range(60):
        actions = random_actions(whole, rng)
        whole.step(actions)
        for clone in clones:
            clone.step(actions[5:].copy())
            assert_rows_equal(whole, clone, slice(5, 8), f"clone, step {t} after the copy")


def test_a_pickle_from_before_first_env_loads_at_env_index_zero():
    env = hmasd.envs.make("stag_hunt", num_envs=3, seed=8)
    env.reset()
    env.step(np.zeros((3, 4), np.int32))
    saved = env.__getstate__()
    del saved["first_env"]
    clone = object.__new__(type(env))
    clone.__setstate__(saved)
    assert clone.first_env == 0 and clone._native.snapshot() == env._native.snapshot()


def stepped(first_env: int, num_envs: int = 4):
    env = hmasd.envs.make("stag_hunt", num_envs=num_envs, seed=2, first_env=first_env)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(random_actions(env, rng))
    return env


def test_a_snapshot_restores_only_into_an_env_with_the_same_first_env():
    source = stepped(first_env=4)
    twin = hmasd.envs.make("stag_hunt", num_envs=4, seed=2, first_env=4)
    twin._native.restore(source._native.snapshot())
    assert twin._native.snapshot() == source._native.snapshot()
    for first_env in (0, 5, U32 - 4):
        target = stepped(first_env=first_env)
        before = target._native.snapshot()
        with pytest.raises(ValueError, match=f"made with first_env=4, this env has first_env={first_env}; make the "
                                             "env with first_env=4"):
            target._native.restore(source._native.snapshot())
        assert target._native.snapshot() == before
        with pytest.raises(ValueError, match="make the env with first_env=4"):
            pickle.loads(pickle.dumps(target))._native.restore(source._native.snapshot())


# ---- the snapshot layout (csrc/batch/snapshot.h): version 2 appends first_env to the sizes block ---------------------


def as_version_1(blob: bytes) -> bytes:
    """A version-2 snapshot rewritten as the version-1 layout: no first_env after the sizes."""
    assert struct.unpack_from("<I", blob, 8)[0] == 2
    at = sizes_block(blob)
    (count,) = struct.unpack_from("<I", blob, at)
    end_of_sizes = at + 4 + 4 * (count - 1)  # where first_env sits
    body = (blob[:8] + struct.pack("<I", 1) + blob[12:at] + struct.pack("<I", count - 1)
            + blob[at + 4:end_of_sizes] + blob[end_of_sizes + 4:-8])
    return sealed(body)


def test_a_version_2_snapshot_holds_first_env_after_the_sizes():
    blob = stepped(first_env=77)._native.snapshot()
    at = sizes_block(blob)
    (count,) = struct.unpack_from("<I", blob, at)
    assert struct.unpack_from("<I", blob, 8)[0] == 2
    assert struct.unpack_from("<I", blob, at + 4 * count)[0] == 77  # the block's last word
    assert struct.unpack_from("<i", blob, at + 4)[0] == 4  # num_envs leads the sizes


def test_a_version_1_snapshot_still_loads_as_first_env_zero():
    source = stepped(first_env=0)
    v1 = as_version_1(source._native.snapshot())
    assert len(v1) == len(source._native.snapshot()) - 4
    target = hmasd.envs.make("stag_hunt", num_envs=4, seed=2)
    target._native.restore(v1)
    assert target._native.snapshot() == source._native.snapshot()
    rng = np.random.default_rng(6)
    for _ in range(30):
        actions = random_actions(source, rng)
        source.step(actions)
        target.step(actions)
    assert_rows_equal(source, target, slice(None), "after a version-1 restore")
    elsewhere = stepped(first_env=3)
    before = elsewhere._native.snapshot()
    with pytest.raises(ValueError, match="made with first_env=0, this env has first_env=3"):
        elsewhere._native.restore(v1)
    assert elsewhere._native.snapshot() == before


@pytest.mark.parametrize("version", [0, 3, 2**32 - 1])
def test_an_unknown_snapshot_version_is_refused(version):
    env = stepped(first_env=0)
    blob = env._native.snapshot()
    forged = sealed(blob[:8] + struct.pack("<I", version) + blob[12:-8])
    with pytest.raises(ValueError, match=f"snapshot format version {version}, this build reads 1 to 2"):
        env._native.restore(forged)
    assert env._native.snapshot() == blob


# ---- the CUDA backend (skipped without a device) -----------------------------------------------------------------


def on_gpu(test):
    for mark in gpu_marks():
        test = mark(test)
    return test


@on_gpu
@pytest.mark.parametrize("name, options", ENV_CASES, ids=CASE_IDS)
def test_a_device_slice_steps_like_rows_of_a_cpu_batch(name, options):
    import torch

    device = hmasd.envs.make(name, num_envs=4, seed=6, first_env=4, device="cuda", **options)
    whole = hmasd.envs.make(name, num_envs=8, seed=6, **options)
    assert device.first_env == 4
    device.reset()
    whole.reset()
    rng = np.random.default_rng(2)
    for t in range(100):
        actions = random_actions(whole, rng)
        whole.step(actions)
        device.step(torch.from_numpy(actions[4:].copy()).cuda())
        for key in ("obs", "state", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(device, key).cpu().numpy(), getattr(whole, key)[4:],
                                          err_msg=f"{key}, step {t}")
