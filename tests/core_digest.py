"""Digests of long native trajectories and rollout batches, to hold a refactor of the native core to the old bits.

Run as a script to (re)write ``tests/data/core_digests.json`` from the current build:
``python tests/core_digest.py --write``. Only do that when a change of behaviour is intended and explained.
Actions, skills, log-probs and values come from integer formulas (no RNG library whose stream could change).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import hmasd.envs
from hmasd.rollout import RolloutEngine

DIGEST_FILE = Path(__file__).parent / "data" / "core_digests.json"
N_TEAM, N_INDIV = 3, 4

# (case name, env, options, num_envs, seed, env steps); short episodes so that auto-resets happen often.
ENV_CASES: list[tuple[str, str, dict[str, Any], int, int, int]] = [
    ("alice_default", "alice_and_bob", {}, 37, 3, 2000),
    ("alice_small", "alice_and_bob", {"height": 5, "width": 7, "max_steps": 9}, 29, 11, 2000),
    ("stag_default", "stag_hunt", {}, 41, 5, 1500),
    ("stag_team", "stag_hunt", {"reward_mode": "team", "num_agents": 3, "grid_size": 6, "max_steps": 13,
                                "tie_break": "index"}, 23, 7, 1500),
    ("uav_default", "uav_coverage", {"max_steps": 17}, 7, 2, 300),
    ("uav_discrete", "uav_coverage", {"action_type": "discrete", "scenario": "base_station", "num_uavs": 3,
                                      "num_users": 20, "max_steps": 11, "channel_model": "urban"}, 9, 4, 300),
]
# (case name, env case, clock, horizon, skill interval, batches)
ENGINE_CASES: list[tuple[str, str, str, int, int, int]] = [
    ("alice_episode", "alice_small", "episode", 23, 4, 12),
    ("alice_global", "alice_small", "global", 23, 4, 12),
    ("stag_episode", "stag_team", "episode", 31, 3, 10),
    ("stag_global", "stag_default", "global", 30, 7, 10),
    ("uav_episode", "uav_default", "episode", 19, 5, 6),
    ("uav_discrete_global", "uav_discrete", "global", 15, 4, 6),
]


def _formula(shape: tuple[int, ...], salt: int) -> np.ndarray:
    """Deterministic int64 values from the index grid: a cheap hash of (index, salt)."""
    grid = np.indices(shape).reshape(len(shape), -1).astype(np.int64)
    h = np.full(grid.shape[1], salt * 2654435761 % 2**32, np.int64)
    for axis in range(len(shape)):
        h = (h * 1000003 + grid[axis] * 97 + 13) % 2**31
    return h.reshape(shape)


def actions_for(env, t: int) -> np.ndarray:
    shape = (env.num_envs, env.num_agents)
    if env.continuous:
        raw = _formula(shape + (env.action_dim,), t)
        return ((raw % 2001) / 1000.0 - 1.0).astype(np.float32)
    raw = _formula(shape, t)
    if env.num_actions and env.action_mask.any():
        # the first valid action at or after a formula index, as a masked policy would pick
        a = env.num_actions
        order = (raw[..., None] + np.arange(a)) % a
        mask = np.take_along_axis(env.action_mask, order, axis=-1)
        return np.take_along_axis(order, mask.argmax(axis=-1)[..., None], axis=-1)[..., 0].astype(np.int32)
    return (raw % max(env.num_actions, 1)).astype(np.int32)


class Digest:
    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, *arrays: Any) -> None:
        for array in arrays:
            data = np.ascontiguousarray(np.asarray(array))
            self._hash.update(str(data.dtype).encode() + str(data.shape).encode())
            self._hash.update(data.tobytes())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def make_env(case: str):
    _, name, options, num_envs, seed, _ = next(c for c in ENV_CASES if c[0] == case)
    return hmasd.envs.make(name, num_envs=num_envs, seed=seed, **options)


def env_digest(case: str) -> str:
    steps = next(c for c in ENV_CASES if c[0] == case)[5]
    env = make_env(case)
    digest = Digest()
    env.reset()
    digest.add(env.obs, env.state, env.action_mask)
    for t in range(steps):
        env.step(actions_for(env, t))
        digest.add(env.obs, env.state, env.rewards, env.terminated, env.truncated, env.action_mask, env.final_obs,
                   env.final_state, env.episode_return, env.episode_length, *env.episode_info.values())
        if t % 50 == 49:
            log = env._native.drain_episode_log()
            digest.add(log["episodes"], log["length_sum"], log["return_sum"], log["info_sum"])
    return digest.hexdigest()


def engine_digest(case: str) -> str:
    _, env_case, clock, horizon, k, batches = next(c for c in ENGINE_CASES if c[0] == case)
    env = make_env(env_case)
    env.reset()
    engine = RolloutEngine(env, horizon, k, N_TEAM, N_INDIV, clock=clock)
    digest = Digest()
    e, n = env.num_envs, env.num_agents
    step = 0
    for _ in range(batches):
        while not engine.ready:
            ids = engine.decision_env_ids()
            if len(ids):
                raw = _formula((len(ids), n + 1), step)
                engine.decide(ids, (raw[:, 0] % N_TEAM).astype(np.int32), (raw[:, 1:] % N_INDIV).astype(np.int32),
                              ((raw % 101) / 10.0).astype(np.float32), ((raw % 37) / 7.0).astype(np.float32))
            actions = actions_for(_MaskedView(env, engine), step)
            raw = _formula((e, n), step + 7)
            engine.step(actions, ((raw % 53) / 5.0).astype(np.float32), ((raw % 29) / 3.0).astype(np.float32))
            digest.add(engine.needs_decision, engine.obs, engine.state)
            step += 1
        digest.add(*engine.low_level().values())
        digest.add(*engine.next_observations())
        digest.add(*engine.high_level().values())
        digest.add(engine.windows["bootstrap_obs"], engine.windows["bootstrap_state"])
        digest.add(np.array(list(engine.counters().values())))
        engine.resume()
    return digest.hexdigest()


class _MaskedView:
    """The env as actions_for sees it, with the engine's current action mask (the env's is stale in a batch)."""

    def __init__(self, env, engine: RolloutEngine) -> None:
        self._env, self.action_mask = env, engine.action_mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def all_digests() -> dict[str, str]:
    out = {f"env/{c[0]}": env_digest(c[0]) for c in ENV_CASES}
    out.update({f"engine/{c[0]}": engine_digest(c[0]) for c in ENGINE_CASES})
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/core_digest.py --write")
    DIGEST_FILE.parent.mkdir(exist_ok=True)
    DIGEST_FILE.write_text(json.dumps(all_digests(), indent=2, sort_keys=True) + "\n")
