"""PettingZoo adapters: PettingZoo's own API tests, seeded determinism, and agreement with the native batched env."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    performance_benchmark,
    render_test,
    seed_test,
    state_test,
)

import hmasd.envs
from hmasd.envs.pettingzoo import alice_and_bob_v0, stag_hunt_v0, uav_coverage_v0
from hmasd.envs.pettingzoo._adapter import HmasdParallelEnv
from hmasd.envs.render import display_available

MODULES = [alice_and_bob_v0, stag_hunt_v0]
ALL_MODULES = [alice_and_bob_v0, stag_hunt_v0, uav_coverage_v0]
ENV_NAMES = {alice_and_bob_v0: "alice_and_bob", stag_hunt_v0: "stag_hunt"}

# (module, options): defaults, plus variants whose episodes end differently. Alice and Bob on a 4 x 4 grid
# (2 x 2 interior) terminate within a few random steps; stag hunt with 2 agents exercises non-default N.
CONFIGS = [
    pytest.param(alice_and_bob_v0, {}, id="alice_and_bob"),
    pytest.param(alice_and_bob_v0, {"height": 4, "width": 4}, id="alice_and_bob-4x4"),
    pytest.param(stag_hunt_v0, {}, id="stag_hunt"),
    pytest.param(stag_hunt_v0, {"num_agents": 2, "num_hares": 2, "reward_mode": "team", "agent_id_in_obs": True,
                                "max_steps": 20}, id="stag_hunt-2agents"),
]
# PettingZoo's own API tests also run on uav_coverage (continuous Box and discrete moves, both scenarios); its
# other tests, which need Box-aware actions, are in test_pettingzoo_uav.py. Small sizes keep the many cycles fast.
API_CONFIGS = CONFIGS + [
    pytest.param(uav_coverage_v0, {"num_uavs": 3, "num_users": 20, "max_steps": 60}, id="uav_coverage"),
    pytest.param(uav_coverage_v0, {"num_uavs": 3, "num_users": 20, "max_steps": 60, "action_type": "discrete"},
                 id="uav_coverage-discrete"),
    pytest.param(uav_coverage_v0, {"num_uavs": 2, "num_users": 10, "max_steps": 30, "scenario": "base_station",
                                   "user_distribution": "hotspot"}, id="uav_coverage-base_station"),
]


@contextmanager
def no_warnings() -> Iterator[None]:
    """Fails if anything warns inside.

    PettingZoo's test utilities report most API problems with ``warnings.warn`` (UserWarning from
    ``pettingzoo.test.*``), which pyproject's filterwarnings ignores; recording them here keeps those checks
    strict.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = [f"{w.category.__name__} ({w.filename}:{w.lineno}): {w.message}" for w in caught]
    assert not messages, "\n".join(messages)


def masked_actions(rng: np.random.Generator, infos: dict[str, dict[str, Any]], agents: list[str]) -> dict[str, int]:
    """A random valid action per live agent, drawn from its ``action_mask``."""
    return {agent: int(rng.choice(np.flatnonzero(infos[agent]["action_mask"]))) for agent in agents}


# ---- PettingZoo's own test utilities -----------------------------------------------------------------


@pytest.mark.parametrize(("module", "options"), API_CONFIGS)
def test_parallel_api(module: ModuleType, options: dict[str, Any]) -> None:
    with no_warnings():
        parallel_api_test(module.parallel_env(**options), num_cycles=1000)


@pytest.mark.parametrize(("module", "options"), API_CONFIGS)
def test_aec_api(module: ModuleType, options: dict[str, Any]) -> None:
    env = module.env(**options)
    assert isinstance(env, AECEnv)
    with no_warnings():
        api_test(env, num_cycles=300)


@pytest.mark.parametrize("module", MODULES)
def test_max_cycles(module: ModuleType) -> None:
    with no_warnings():
        max_cycles_test(module)


@pytest.mark.parametrize("module", ALL_MODULES)
def test_render(module: ModuleType) -> None:
    with no_warnings():
        render_test(module.env)


@pytest.mark.parametrize("module", ALL_MODULES)
def test_performance_benchmark(module: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with no_warnings():
        performance_benchmark(module.env())
    turns = float(capsys.readouterr().out.split(" turns per second")[0].split()[-1])
    assert turns > 1000, f"{module.__name__}: {turns:.0f} AEC turns per second"


@pytest.mark.parametrize(("module", "options"), API_CONFIGS)
def test_state(module: ModuleType, options: dict[str, Any]) -> None:
    with no_warnings():
        state_test(module.env(**options), module.parallel_env(**options), num_cycles=50)


@pytest.mark.parametrize("module", ALL_MODULES)
def test_pettingzoo_seed_tests(module: ModuleType) -> None:
    with no_warnings():
        seed_test(module.env, num_cycles=100)
        parallel_seed_test(module.parallel_env, num_cycles=100)


# ---- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "options"), CONFIGS)
def test_agents_spaces_and_metadata(module: ModuleType, options: dict[str, Any]) -> None:
    env = module.parallel_env(**options)
    native = hmasd.envs.make(ENV_NAMES[module], **options)
    assert isinstance(env, ParallelEnv) and isinstance(env, HmasdParallelEnv)
    assert env.metadata == {"name": f"{ENV_NAMES[module]}_v0", "is_parallelizable": True, "render_fps": 10,
                            "render_modes": ["rgb_array", "human"] if display_available() else ["rgb_array"]}
    assert str(env) == f"{ENV_NAMES[module]}_v0"
    assert env.possible_agents == [f"agent_{i}" for i in range(native.num_agents)]
    assert env.agents == []  # no episode before reset
    for agent in env.possible_agents:
        obs_space, act_space = env.observation_space(agent), env.action_space(agent)
        assert obs_space is env.observation_space(agent) and act_space is env.action_space(agent)
        assert obs_space == native.observation_space and act_space == spaces.Discrete(native.num_actions)
    # distinct objects per agent, so seeding one agent's space does not reseed another's
    assert env.action_space("agent_0") is not env.action_space("agent_1")
    assert env.state_space == native.state_space
    assert env.options == native.options
    with pytest.raises(KeyError, match="agent_99"):
        env.observation_space("agent_99")

    obs, infos = env.reset(seed=3)
    assert env.agents == env.possible_agents and env.agents is not env.possible_agents
    assert set(obs) == set(infos) == set(env.agents)
    for agent in env.agents:
        assert obs[agent].dtype == np.float32 and env.observation_space(agent).contains(obs[agent])
        mask = infos[agent]["action_mask"]
        assert mask.dtype == np.int8 and mask.shape == (native.num_actions,) and set(np.unique(mask)) <= {0, 1}
    assert env.state_space.contains(env.state())


def test_generic_adapter_and_max_cycles_alias() -> None:
    env = HmasdParallelEnv("stag_hunt", num_agents=3, max_cycles=7)
    assert env.metadata["name"] == "stag_hunt" and len(env.possible_agents) == 3
    assert env.options["max_steps"] == 7 and env.options["num_agents"] == 3
    assert stag_hunt_v0.parallel_env(max_cycles=5, max_steps=5).options["max_steps"] == 5
    with pytest.raises(TypeError, match="disagree"):
        stag_hunt_v0.parallel_env(max_cycles=5, max_steps=6)
    with pytest.raises(TypeError, match="grid_sise"):
        stag_hunt_v0.parallel_env(grid_sise=5)
    with pytest.raises(ValueError, match="unknown env"):
        HmasdParallelEnv("no_such_env")
    # the class-level metadata of the generic adapter is not modified by instances
    assert HmasdParallelEnv.metadata["name"] == "hmasd"


# ---- stepping semantics --------------------------------------------------------------------------


def test_agents_empty_after_truncation_and_stepping_then_raises() -> None:
    env = alice_and_bob_v0.parallel_env(max_steps=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 4, "agent_1": 4})  # before reset
    env.reset(seed=0)
    for t in range(3):
        assert env.agents == ["agent_0", "agent_1"]
        obs, rewards, terminations, truncations, infos = env.step({"agent_0": 4, "agent_1": 4})
        last = t == 2
        assert set(obs) == set(rewards) == set(terminations) == set(truncations) == set(infos) == {"agent_0",
                                                                                                  "agent_1"}
        assert terminations == {"agent_0": False, "agent_1": False}
        assert truncations == {"agent_0": last, "agent_1": last}
        assert all(type(r) is float for r in rewards.values())
        assert all(("episode_metrics" in info) == last for info in infos.values())
    assert env.agents == []
    assert infos["agent_0"]["episode_metrics"] == {"return": 0.0, "length": 3, "success": 0.0, "diamonds_collected": 0.0}
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 4, "agent_1": 4})
    env.reset()
    assert env.agents == ["agent_0", "agent_1"]


def test_agents_empty_after_termination_with_episode_info() -> None:
    env = alice_and_bob_v0.parallel_env(height=4, width=4)
    rng = np.random.default_rng(0)
    terminated_episodes = 0
    for episode in range(5):
        obs, infos = env.reset(seed=episode)
        for _ in range(100):
            obs, rewards, terminations, truncations, infos = env.step(masked_actions(rng, infos, env.agents))
            if not env.agents:
                break
        assert env.agents == []
        if terminations["agent_0"]:
            terminated_episodes += 1
            assert terminations == {"agent_0": True, "agent_1": True}
            assert truncations == {"agent_0": False, "agent_1": False}
            assert rewards == {"agent_0": 1.0, "agent_1": 1.0}
            for info in infos.values():
                assert info["episode_metrics"]["success"] == 1.0 and info["episode_metrics"]["diamonds_collected"] == 2.0
                assert info["episode_metrics"]["return"] == 1.0 and 1 <= info["episode_metrics"]["length"] <= 100
        else:
            assert truncations == {"agent_0": True, "agent_1": True}
            assert terminations == {"agent_0": False, "agent_1": False}
            for info in infos.values():
                assert info["episode_metrics"]["success"] == 0.0 and info["episode_metrics"]["length"] == 100
    assert terminated_episodes >= 3  # a random walk on a 2 x 2 interior usually succeeds within 100 steps


def test_action_errors() -> None:
    env = stag_hunt_v0.parallel_env(num_agents=3)
    env.reset(seed=1)
    before = env.state()
    with pytest.raises(ValueError, match=r"missing.*agent_2"):
        env.step({"agent_0": 4, "agent_1": 4})
    with pytest.raises(ValueError, match="unknown agents.*agent_7"):
        env.step({"agent_0": 4, "agent_1": 4, "agent_2": 4, "agent_7": 0})
    with pytest.raises(ValueError, match=r"out of range \[0, 5\)"):
        env.step({"agent_0": 4, "agent_1": 5, "agent_2": 4})
    with pytest.raises(ValueError, match="out of range"):
        env.step({"agent_0": -1, "agent_1": 4, "agent_2": 4})
    with pytest.raises(TypeError, match="agent_1.*integer"):
        env.step({"agent_0": 4, "agent_1": 1.5, "agent_2": 4})
    with pytest.raises(TypeError, match="agent_0.*integer"):
        env.step({"agent_0": None, "agent_1": 4, "agent_2": 4})
    assert np.array_equal(env.state(), before)  # nothing moved
    assert env.agents == env.possible_agents
    # NumPy integers are fine
    env.step({"agent_0": np.int32(4), "agent_1": np.int64(0), "agent_2": np.uint8(1)})
    assert not np.array_equal(env.state(), before)  # time advanced


def test_returned_arrays_are_copies() -> None:
    env = stag_hunt_v0.parallel_env()
    obs, infos = env.reset(seed=0)
    kept_obs, kept_masks, kept_state = copy.deepcopy(obs), copy.deepcopy(infos), env.state()
    state_alias = env.state()
    new_obs, *_ = env.step(dict.fromkeys(env.agents, 4))
    # the time feature changed, so views of native memory would have changed too
    assert not np.array_equal(new_obs["agent_0"], kept_obs["agent_0"])
    assert not np.array_equal(env.state(), kept_state)
    for agent in env.possible_agents:
        assert np.array_equal(obs[agent], kept_obs[agent])
        assert np.array_equal(infos[agent]["action_mask"], kept_masks[agent]["action_mask"])
    assert np.array_equal(state_alias, kept_state)
    # writing into a returned array does not reach the env
    state_before = env.state()
    new_obs["agent_0"][:] = -7.0
    infos["agent_0"]["action_mask"][:] = 0
    assert np.array_equal(env.state(), state_before)
    _, infos = env.reset(seed=0)
    assert infos["agent_0"]["action_mask"].any()


# ---- seeding and determinism ---------------------------------------------------------------------


def run_episodes(env: HmasdParallelEnv, seed: int, episodes: int, action_seed: int,
                 act: Callable[[HmasdParallelEnv, np.random.Generator, dict[str, Any]], dict[str, Any]] | None = None
                 ) -> list[tuple[Any, ...]]:
    """Every reset/step result of ``episodes`` episodes: the first reset seeded, the later ones continuing.
    ``act(env, rng, infos)`` chooses the actions (default: uniform among the valid discrete ones)."""
    act = act or (lambda env, rng, infos: masked_actions(rng, infos, env.agents))
    rng = np.random.default_rng(action_seed)
    trace: list[tuple[Any, ...]] = []
    for episode in range(episodes):
        obs, infos = env.reset(seed=seed if episode == 0 else None)
        trace.append(("reset", obs, infos, env.state()))
        while env.agents:
            actions = act(env, rng, infos)
            obs, rewards, terminations, truncations, infos = env.step(actions)
            trace.append(("step", actions, obs, rewards, terminations, truncations, infos, env.state()))
    return trace


def assert_same_trace(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        assert_same(x, y, f"entry {t}")


def assert_same(x: Any, y: Any, where: str) -> None:
    assert type(x) is type(y), where
    if isinstance(x, dict):
        assert list(x) == list(y), where
        for key in x:
            assert_same(x[key], y[key], f"{where}[{key!r}]")
    elif isinstance(x, (tuple, list)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            assert_same(u, v, f"{where}[{i}]")
    elif isinstance(x, np.ndarray):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), where
    else:
        assert x == y, where


@pytest.mark.parametrize(("module", "options"), CONFIGS)
def test_same_seed_same_episodes_different_seed_differs(module: ModuleType, options: dict[str, Any]) -> None:
    first = run_episodes(module.parallel_env(**options), seed=11, episodes=4, action_seed=5)
    second = run_episodes(module.parallel_env(**options), seed=11, episodes=4, action_seed=5)
    assert sum(entry[0] == "reset" for entry in first) == 4
    assert_same_trace(first, second)

    other = run_episodes(module.parallel_env(**options), seed=12, episodes=4, action_seed=5)
    states = [entry[-1] for entry in first]
    other_states = [entry[-1] for entry in other]
    assert len(states) != len(other_states) or any(
        not np.array_equal(s, o) for s, o in zip(states, other_states))
    # the starts of the episodes already depend on the seed
    starts = [entry[-1] for entry in first if entry[0] == "reset"]
    other_starts = [entry[-1] for entry in other if entry[0] == "reset"]
    assert any(not np.array_equal(s, o) for s, o in zip(starts, other_starts))


@pytest.mark.parametrize("module", MODULES)
def test_reset_seed_replays_and_unseeded_reset_continues(module: ModuleType) -> None:
    env = module.parallel_env()
    first_obs, _ = env.reset(seed=21)
    first_state = env.state()
    env.step(dict.fromkeys(env.agents, 0))
    next_obs, _ = env.reset()  # next episode of the same stream: a different start
    assert not np.array_equal(env.state(), first_state)
    replay_obs, _ = env.reset(seed=21)
    assert np.array_equal(env.state(), first_state)
    assert_same(replay_obs, first_obs, "replay")
    again_next, _ = env.reset()
    assert_same(again_next, next_obs, "continued stream")
    env.reset(seed=np.int64(21))  # NumPy integer seeds are accepted
    assert np.array_equal(env.state(), first_state)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        env.reset(seed=1.5)


@pytest.mark.parametrize(("module", "options"), CONFIGS)
def test_matches_native_vec_env_step_by_step(module: ModuleType, options: dict[str, Any]) -> None:
    env = module.parallel_env(**options)
    native = hmasd.envs.make(ENV_NAMES[module], num_envs=1, seed=7, autoreset="disabled", **options)
    agents = env.possible_agents
    rng = np.random.default_rng(3)
    steps = 0
    for episode in range(3):
        seed = 7 if episode == 0 else None
        obs, infos = env.reset(seed=seed)
        native_obs, _ = native.reset(seed=seed)
        while True:
            for i, agent in enumerate(agents):
                assert np.array_equal(obs[agent], native_obs[0, i])
                assert np.array_equal(infos[agent]["action_mask"], native.action_mask[0, i].astype(np.int8))
            assert np.array_equal(env.state(), native.state[0])
            if not env.agents:
                break
            actions = masked_actions(rng, infos, env.agents)
            obs, rewards, terminations, truncations, infos = env.step(actions)
            native_obs, native_rewards, terminated, truncated, _ = native.step(
                np.array([[actions[agent] for agent in agents]]))
            steps += 1
            assert rewards == {agent: float(native_rewards[0, i]) for i, agent in enumerate(agents)}
            assert terminations == dict.fromkeys(agents, bool(terminated[0]))
            assert truncations == dict.fromkeys(agents, bool(truncated[0]))
            if terminated[0] or truncated[0]:
                for i, agent in enumerate(agents):
                    episode_info = infos[agent]["episode_metrics"]
                    assert episode_info["return"] == float(native.episode_return[0, i])
                    assert episode_info["length"] == int(native.episode_length[0])
                    for field, values in native.episode_info.items():
                        expected = values[0, i] if values.ndim == 2 else values[0]
                        assert episode_info[field] == float(expected)
            else:
                assert all("episode" not in info for info in infos.values())
    assert steps > 3


@pytest.mark.parametrize("module", MODULES)
def test_aec_env_follows_the_parallel_env(module: ModuleType) -> None:
    par = module.parallel_env(max_steps=10)
    aec = module.env(max_steps=10)
    par_obs, par_infos = par.reset(seed=4)
    aec.reset(seed=4)
    rng = np.random.default_rng(9)
    cycle: dict[str, int] = {}
    par_rewards: dict[str, float] = {}
    for agent in aec.agent_iter():
        obs, reward, terminated, truncated, info = aec.last()
        assert np.array_equal(obs, par_obs[agent])
        assert np.array_equal(info["action_mask"], par_infos[agent]["action_mask"])
        if par_rewards:
            assert reward == par_rewards[agent]
        if terminated or truncated:
            aec.step(None)
            continue
        if not cycle:
            cycle = masked_actions(rng, par_infos, par.agents)
        aec.step(cycle[agent])
        if agent == par.possible_agents[-1]:
            par_obs, par_rewards, _, _, par_infos = par.step(cycle)
            cycle = {}
            assert np.array_equal(aec.state(), par.state())
    assert par.agents == [] and aec.agents == []


def test_pickle_mid_episode_continues_identically() -> None:
    env = stag_hunt_v0.parallel_env(num_agents=3)
    _, infos = env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, _, _, _, infos = env.step(masked_actions(rng, infos, env.agents))
    clone = pickle.loads(pickle.dumps(env))
    assert clone.agents == env.agents and np.array_equal(clone.state(), env.state())
    for _ in range(10):
        actions = masked_actions(rng, infos, env.agents)
        a = env.step(actions)
        b = clone.step(actions)
        assert_same(a, b, "after unpickling")
        infos = a[4]


# ---- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_render_modes(module: ModuleType) -> None:
    env = module.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    native = hmasd.envs.make(ENV_NAMES[module], seed=0, autoreset="disabled")
    native.reset(seed=0)
    assert np.array_equal(frame, native.render(0))
    frames = [frame]
    for _ in range(5):  # frames follow the episode (and still match the native render)
        env.step(dict.fromkeys(env.agents, 3))
        native.step(np.full((1, native.num_agents), 3))
        frames.append(env.render())
        assert np.array_equal(frames[-1], native.render(0))
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])

    silent = module.parallel_env()
    silent.reset(seed=0)
    with pytest.warns(UserWarning, match="without specifying any render mode"):
        assert silent.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        module.parallel_env(render_mode="ansi")


@pytest.mark.parametrize("module", MODULES)
def test_human_render_without_a_display_says_so(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    env = module.parallel_env(render_mode="human")  # PettingZoo's render_test builds one first, to read metadata
    assert env.metadata["render_modes"] == ["rgb_array"] and env.metadata["render_fps"] > 0
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="needs a display.*render_mode='rgb_array'"):
        env.render()


@pytest.mark.parametrize("module", ALL_MODULES)
def test_human_render_shows_the_frames_in_a_window(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a display, "human" is offered and render_test passes on it too; the window shows the rgb_array frame.
    matplotlib's Agg backend stands in for the screen (no display here): admitted as interactive for the test, with
    Figure.show (which Agg cannot do) recorded instead."""
    import matplotlib
    import matplotlib.figure
    import matplotlib.pyplot as pyplot

    import hmasd.envs.render as render

    matplotlib.use("agg")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(render, "_interactive_backend", lambda: True)
    opened: list[object] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "show", lambda figure, *args, **kwargs: opened.append(figure))
    with no_warnings():
        render_test(module.env)  # every mode of metadata: rgb_array and human
    env = module.parallel_env(render_mode="human")
    assert env.metadata["render_modes"] == ["rgb_array", "human"]
    twin = module.parallel_env(render_mode="rgb_array")
    env.reset(seed=3)
    twin.reset(seed=3)
    for _ in range(3):
        assert env.render() is None
        shown = env._window._image.get_array()
        np.testing.assert_array_equal(np.asarray(shown), twin.render())
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        env.step(actions)
        twin.step(actions)
    figure = env._window._figure
    assert opened[-1] is figure and opened.count(figure) == 1  # one window, opened at the first frame
    env.close()
    assert not pyplot.fignum_exists(figure.number)


@pytest.mark.parametrize("module", [stag_hunt_v0, uav_coverage_v0])
def test_unseeded_copies_differ_and_seeded_ones_repeat(module: ModuleType) -> None:
    """SuperSuit's concatenated copies and TorchRL's SerialEnv build envs without seeds: they must not be clones."""
    def trajectory(env: ParallelEnv, seed: int | None) -> list[np.ndarray]:
        env.reset(seed=seed)
        states = [env.state()]
        for agent in env.agents:
            env.action_space(agent).seed(0)
        for _ in range(5):
            env.step({agent: env.action_space(agent).sample() for agent in env.agents})
            states.append(env.state())
        return states

    first, second = (trajectory(module.parallel_env(), None) for _ in range(2))
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    original = module.parallel_env()
    copies = [trajectory(copy.deepcopy(original), None) for _ in range(2)]  # copied before the first reset
    assert any(not np.array_equal(a, b) for a, b in zip(*copies))
    replay = [trajectory(module.parallel_env(), 17) for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*replay))
    fixed = [trajectory(module.parallel_env(seed=5), None) for _ in range(2)]  # a constructor seed fixes unseeded use
    assert all(np.array_equal(a, b) for a, b in zip(*fixed))

