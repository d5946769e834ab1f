"""Hand-computed cases from docs/envs.md that pin the NumPy reference envs (and their batched wrapper) down."""

from __future__ import annotations

import numpy as np
import pytest

from hmasd.envs.reference import AliceAndBobRef, EnvRng, ReferenceVecEnv, StagHuntRef, uniform_int

# alice_and_bob actions
A_RIGHT, A_LEFT, A_UP, A_DOWN, A_STAY = 0, 1, 2, 3, 4
# stag_hunt actions
S_UP, S_DOWN, S_LEFT, S_RIGHT, S_STAY = 0, 1, 2, 3, 4


def place(env, **positions) -> None:
    for name, value in positions.items():
        setattr(env, name, np.array(value, dtype=np.int64))


def kth_free_cell(size: int, occupied: set[tuple[int, int]], k: int) -> tuple[int, int]:
    free = [(r, c) for r in range(size) for c in range(size) if (r, c) not in occupied]
    return free[k]


# --- alice_and_bob ---------------------------------------------------------------------------------


def test_alice_dimensions_and_options() -> None:
    env = AliceAndBobRef(0, 0, height=6, width=7)
    assert (env.num_agents, env.obs_dim, env.state_dim, env.num_actions) == (2, 11, 42, 5)
    assert (env.height, env.width, env.max_steps) == (6, 7, 100)
    with pytest.raises(TypeError, match="heigth"):
        AliceAndBobRef(0, 0, heigth=6)


def test_alice_scripted_walk_collects_both_diamonds_and_terminates_exactly_then() -> None:
    # 6 x 7: button 0 (1, 5), button 1 (1, 1), diamond 0 (4, 1), diamond 1 (4, 5).
    env = AliceAndBobRef(0, 0, height=6, width=7)
    env.reset(0)
    place(env, agent_pos=[[1, 1], [4, 3]])

    # Agent 0 holds button 1 while agent 1 walks right onto diamond 1.
    rewards, terminated, truncated = env.step([A_STAY, A_RIGHT])
    assert rewards.tolist() == [0.0, 0.0] and not terminated and not truncated
    assert env.agent_pos.tolist() == [[1, 1], [4, 4]]
    assert env.collected.tolist() == [False, False]
    rewards, terminated, truncated = env.step([A_STAY, A_RIGHT])
    assert rewards.tolist() == [0.0, 0.0] and not terminated and not truncated
    assert env.collected.tolist() == [False, True]
    assert env.episode_info()["diamonds_collected"] == 1.0
    assert env.episode_info()["success"] == 0.0

    # Agent 0 walks to button 0 in 4 steps, agent 1 to diamond 0 in 4 steps but waits there one step for it.
    for _ in range(3):
        rewards, terminated, truncated = env.step([A_RIGHT, A_LEFT])
        assert rewards.tolist() == [0.0, 0.0] and not terminated
    state = env.global_state().reshape(6, 7)
    assert state[4, 5] == 0.0  # collected diamond 1 is no longer drawn
    assert state[4, 1] == 6.0  # diamond 0 still is
    rewards, terminated, truncated = env.step([A_STAY, A_LEFT])
    assert env.agent_pos.tolist() == [[1, 4], [4, 1]]
    assert rewards.tolist() == [0.0, 0.0] and not terminated  # on diamond 0, but button 0 is not pressed
    assert env.collected.tolist() == [False, True]  # a collected diamond stays collected after its button is left

    rewards, terminated, truncated = env.step([A_RIGHT, A_STAY])
    assert env.agent_pos.tolist() == [[1, 5], [4, 1]]
    assert rewards.dtype == np.float32
    assert rewards.tolist() == [1.0, 1.0]
    assert terminated and not truncated
    assert env.t == 7
    info = env.episode_info()
    assert info["success"].shape == () and info["success"] == 1.0
    assert info["diamonds_collected"] == 2.0
    with pytest.raises(RuntimeError):
        env.step([A_STAY, A_STAY])


def test_alice_termination_on_the_last_step_is_not_truncation() -> None:
    env = AliceAndBobRef(0, 0, max_steps=1)
    env.reset(0)
    env.collected = np.array([False, True])
    place(env, agent_pos=[[1, 7], [8, 2]])  # next to button 0 (1, 8) and diamond 0 (8, 1)
    rewards, terminated, truncated = env.step([A_RIGHT, A_LEFT])
    assert rewards.tolist() == [1.0, 1.0]
    assert terminated and not truncated


def test_alice_moves_and_walls() -> None:
    env = AliceAndBobRef(0, 0)
    env.reset(0)
    for action, expected in [(A_RIGHT, [3, 5]), (A_LEFT, [3, 3]), (A_UP, [2, 4]), (A_DOWN, [4, 4]), (A_STAY, [3, 4])]:
        place(env, agent_pos=[[3, 4], [5, 5]])
        env.step([action, A_STAY])
        assert env.agent_pos[0].tolist() == expected, action
    # Into the wall is a stay, at both corners of the interior.
    for action in (A_LEFT, A_UP):
        place(env, agent_pos=[[1, 2], [5, 5]] if action == A_UP else [[2, 1], [5, 5]])
        before = env.agent_pos[0].tolist()
        env.step([action, A_STAY])
        assert env.agent_pos[0].tolist() == before
    for action in (A_RIGHT, A_DOWN):
        place(env, agent_pos=[[5, 5], [8, 8]])
        env.step([A_STAY, action])
        assert env.agent_pos[1].tolist() == [8, 8]


def test_alice_occupancy_codes_in_obs_and_state() -> None:
    env = AliceAndBobRef(0, 0)
    env.reset(0)
    place(env, agent_pos=[[1, 1], [1, 2]])  # agent 0 on button 1, agent 1 beside it
    obs = env.observe()
    assert obs.dtype == np.float32 and obs.shape == (2, 11)
    assert obs[0].tolist() == [1, 1, 1, 1, 2, 3, 1, 0, 0, 1, 1]
    assert obs[1].tolist() == [1, 1, 1, 2, 3, 0, 0, 0, 0, 1, 2]

    place(env, agent_pos=[[7, 1], [2, 8]])  # above diamond 0, below button 0
    obs = env.observe()
    assert obs[0].tolist() == [1, 0, 0, 1, 2, 0, 1, 6, 0, 7, 1]
    assert obs[1].tolist() == [0, 4, 1, 0, 3, 1, 0, 0, 1, 2, 8]

    place(env, agent_pos=[[8, 8], [8, 8]])  # both on diamond 1: agent 1 is drawn over agent 0
    assert env.observe()[0, 4] == 3.0
    state = env.global_state().reshape(10, 10)
    assert env.global_state().shape == (100,) and state.dtype == np.float32
    assert state[0].tolist() == [1.0] * 10 and state[:, 9].tolist() == [1.0] * 10
    assert (state[1, 8], state[1, 1], state[8, 1], state[8, 8]) == (4.0, 5.0, 6.0, 3.0)
    assert np.count_nonzero(state == 0.0) == 64 - 4
    assert env.action_mask().tolist() == [[True] * 5] * 2


def test_alice_truncates_at_max_steps() -> None:
    env = AliceAndBobRef(0, 0, max_steps=3)
    env.reset(0)
    place(env, agent_pos=[[3, 3], [4, 4]])
    for step in range(1, 4):
        rewards, terminated, truncated = env.step([A_STAY, A_STAY])
        assert rewards.tolist() == [0.0, 0.0] and not terminated
        assert truncated == (step == 3)
        assert env.t == step
    assert env.episode_info()["success"] == 0.0


def test_alice_reset_draws_two_distinct_interior_cells_by_the_formula() -> None:
    env = AliceAndBobRef(11, 2, height=6, width=7)
    skipped = False
    for episode in range(40):
        env.reset(episode)
        assert env.t == 0 and env.episode == episode and not env.collected.any()
        rng = EnvRng(11, 2)
        a = uniform_int(rng.word(episode, 0, 1, 0), 20)
        b = uniform_int(rng.word(episode, 0, 1, 1), 19)
        skipped |= b >= a
        b += b >= a
        assert env.agent_pos.tolist() == [[1 + a // 5, 1 + a % 5], [1 + b // 5, 1 + b % 5]]
        assert a != b
    assert skipped  # the b >= a branch was exercised


# --- stag_hunt -------------------------------------------------------------------------------------


def test_stag_dimensions_and_options() -> None:
    env = StagHuntRef(0, 0)
    assert (env.num_agents, env.obs_dim, env.state_dim, env.num_actions) == (4, 19, 19, 5)
    assert StagHuntRef(0, 0, agent_id_in_obs=True).obs_dim == 23
    assert StagHuntRef(0, 0, num_agents=2, num_hares=1).obs_dim == 2 + 2 + 2 + 2 + 1
    with pytest.raises(TypeError, match="stag_move_probability"):
        StagHuntRef(0, 0, stag_move_probability=0.1)
    with pytest.raises(ValueError, match="tie_break"):
        StagHuntRef(0, 0, tie_break="first")


def stag_env(**options) -> StagHuntRef:
    defaults = {"grid_size": 5, "stag_move_prob": 0.0, "num_hares": 2}
    env = StagHuntRef(3, 1, **{**defaults, **options})
    env.reset(0)
    return env


def test_stag_two_hunters_share_the_stag_and_a_lone_agent_takes_a_hare() -> None:
    env = stag_env()
    place(env, agent_pos=[[1, 2], [2, 1], [0, 1], [4, 4]], stag_pos=[2, 2], hare_pos=[[0, 0], [4, 0]])
    rewards, terminated, truncated = env.step([S_DOWN, S_RIGHT, S_LEFT, S_STAY])
    assert env.agent_pos.tolist() == [[2, 2], [2, 2], [0, 0], [4, 4]]
    assert rewards.dtype == np.float32
    assert rewards.tolist() == [10.0, 10.0, 1.0, 0.0]
    assert not terminated and not truncated
    info = env.episode_info()
    assert info["stags"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert info["hares"].tolist() == [0.0, 0.0, 1.0, 0.0]

    # The stag, then hare 0, respawn on free cells; hare 1 was not caught and stays.
    occupied = {(2, 2), (0, 0), (4, 4), (4, 0)}
    rng = EnvRng(3, 1)
    stag = kth_free_cell(5, occupied, uniform_int(rng.word(0, 0, 4, 0), 25 - 4))
    hare0 = kth_free_cell(5, occupied | {stag}, uniform_int(rng.word(0, 0, 4, 1), 25 - 5))
    assert env.stag_pos.tolist() == list(stag)
    assert env.hare_pos.tolist() == [list(hare0), [4, 0]]


def test_stag_lone_hunter_gets_the_penalty_and_the_stag_stays() -> None:
    env = stag_env(lone_stag_penalty=2.5)
    place(env, agent_pos=[[2, 2], [0, 4], [3, 3], [4, 4]], stag_pos=[2, 2], hare_pos=[[0, 0], [4, 0]])
    rewards, _, _ = env.step([S_STAY] * 4)
    assert rewards.tolist() == [-2.5, 0.0, 0.0, 0.0]
    assert env.stag_pos.tolist() == [2, 2]
    assert env.episode_info()["stags"].tolist() == [0.0] * 4


def test_stag_min_hunters_is_an_option() -> None:
    env = stag_env(stag_min_hunters=3, stag_reward=4.0)
    place(env, agent_pos=[[2, 2], [2, 2], [2, 2], [4, 4]], stag_pos=[2, 2], hare_pos=[[0, 0], [4, 0]])
    rewards, _, _ = env.step([S_STAY] * 4)
    assert rewards.tolist() == [4.0, 4.0, 4.0, 0.0]


def test_stag_hare_tie_break_index_gives_the_hare_to_the_lower_index() -> None:
    env = stag_env(tie_break="index", hare_reward=2.0)
    place(env, agent_pos=[[4, 4], [1, 0], [0, 3], [0, 1]], stag_pos=[2, 2], hare_pos=[[0, 0], [3, 3]])
    rewards, _, _ = env.step([S_STAY, S_UP, S_STAY, S_LEFT])  # agents 1 and 3 both reach hare 0
    assert rewards.tolist() == [0.0, 2.0, 0.0, 0.0]
    assert env.episode_info()["hares"].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_stag_hare_tie_break_random_uses_the_rng_and_favours_neither() -> None:
    winners = set()
    for episode in range(30):
        env = StagHuntRef(5, 0, grid_size=5, stag_move_prob=0.0, num_hares=2)
        env.reset(episode)
        place(env, agent_pos=[[4, 4], [0, 0], [0, 3], [0, 0]], stag_pos=[2, 2], hare_pos=[[0, 0], [3, 3]])
        rewards, _, _ = env.step([S_STAY] * 4)
        pick = uniform_int(EnvRng(5, 0).word(episode, 0, 3, 0), 2)
        winner = [1, 3][pick]
        assert rewards.tolist() == [1.0 if i == winner else 0.0 for i in range(4)]
        winners.add(winner)
    assert winners == {1, 3}


def test_stag_team_mode_gives_everyone_the_sum() -> None:
    env = stag_env(reward_mode="team", lone_stag_penalty=0.5)
    place(env, agent_pos=[[2, 2], [2, 2], [0, 0], [4, 4]], stag_pos=[2, 2], hare_pos=[[0, 0], [4, 0]])
    rewards, _, _ = env.step([S_STAY] * 4)
    assert rewards.tolist() == [21.0] * 4
    env = stag_env(reward_mode="team", lone_stag_penalty=0.5)
    place(env, agent_pos=[[2, 2], [1, 1], [0, 0], [4, 4]], stag_pos=[2, 2], hare_pos=[[0, 0], [4, 0]])
    rewards, _, _ = env.step([S_STAY] * 4)
    assert rewards.tolist() == [0.5] * 4  # -0.5 + 0 + 1 + 0


def test_stag_action_mask_and_border_moves() -> None:
    env = stag_env()
    place(env, agent_pos=[[0, 0], [4, 4], [0, 4], [2, 2]])
    assert env.action_mask().tolist() == [
        [False, True, False, True, True],
        [True, False, True, False, True],
        [False, True, True, False, True],
        [True, True, True, True, True],
    ]
    env.step([S_UP, S_DOWN, S_RIGHT, S_LEFT])
    assert env.agent_pos.tolist() == [[0, 0], [4, 4], [0, 4], [2, 1]]
    env.step([S_LEFT, S_RIGHT, S_UP, S_DOWN])
    assert env.agent_pos.tolist() == [[0, 0], [4, 4], [0, 4], [3, 1]]


def test_stag_observation_and_state_values() -> None:
    env = StagHuntRef(0, 0, grid_size=5, num_agents=3, num_hares=1, agent_id_in_obs=True)
    env.reset(0)
    place(env, agent_pos=[[0, 0], [1, 2], [4, 4]], stag_pos=[3, 1], hare_pos=[[2, 4]])
    obs = env.observe()
    assert obs.shape == (3, 14) and obs.dtype == np.float32
    # own (1, 2)/4; agent 2 then agent 0 relative; stag; hare; t/T; one-hot of agent 1.
    assert obs[1].tolist() == [0.25, 0.5, 0.75, 0.5, -0.25, -0.5, 0.5, -0.25, 0.25, 0.5, 0.0, 0.0, 1.0, 0.0]
    assert obs[0, :6].tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    state = env.global_state()
    assert state.dtype == np.float32
    assert state.tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 0.75, 0.25, 0.5, 1.0, 0.0]


def test_stag_float_features_are_single_float32_divisions() -> None:
    env = StagHuntRef(0, 0, num_agents=2, num_hares=1, stag_move_prob=0.0)  # D = 7, T = 35
    env.reset(0)
    place(env, agent_pos=[[3, 6], [5, 1]], stag_pos=[0, 0], hare_pos=[[7, 7]])
    env.step([S_STAY, S_STAY])
    obs = env.observe()
    d = np.float32(7)
    expected = [np.float32(3) / d, np.float32(6) / d, np.float32(2) / d, np.float32(-5) / d,
                np.float32(-3) / d, np.float32(-6) / d, np.float32(4) / d, np.float32(1) / d,
                np.float32(1) / np.float32(35)]
    assert obs[0].view(np.uint32).tolist() == np.array(expected, dtype=np.float32).view(np.uint32).tolist()


def test_stag_flees_to_the_only_free_neighbour_before_capture() -> None:
    env = stag_env(stag_move_prob=1.0)
    # Stag in the corner (0, 0): down (1, 0) gets an agent, right (0, 1) stays free.
    place(env, agent_pos=[[2, 0], [0, 2], [4, 4], [4, 3]], stag_pos=[0, 0], hare_pos=[[3, 3], [4, 0]])
    rewards, _, _ = env.step([S_UP, S_STAY, S_STAY, S_STAY])
    assert env.stag_pos.tolist() == [0, 1]
    assert rewards.tolist() == [0.0] * 4
    # Boxed in by agent 2 below and a hare to the right: it stays, and agent 0 joins agent 1 on it.
    place(env, agent_pos=[[1, 0], [0, 0], [1, 0], [4, 3]], stag_pos=[0, 0], hare_pos=[[0, 1], [4, 0]])
    rewards, _, _ = env.step([S_UP, S_STAY, S_STAY, S_STAY])
    assert rewards.tolist() == [10.0, 10.0, 0.0, 0.0]
    # Caught at episode step t = 1, so it respawns by word(t=1, purpose 4, index 0) among the 20 free cells.
    occupied = {(0, 0), (1, 0), (4, 3), (0, 1), (4, 0)}
    respawn = kth_free_cell(5, occupied, uniform_int(EnvRng(3, 1).word(0, 1, 4, 0), 20))
    assert env.stag_pos.tolist() == list(respawn)


def test_stag_moves_with_probability_and_direction_from_the_rng() -> None:
    env = StagHuntRef(9, 4, stag_move_prob=0.5, num_hares=0)
    env.reset(2)
    moved = 0
    for t in range(35):
        place(env, agent_pos=[[0, 0], [0, 7], [7, 0], [7, 7]], stag_pos=[4, 4])
        env.step([S_STAY] * 4)
        rng = EnvRng(9, 4)
        expected = [4, 4]
        if rng.word(2, t, 2, 0) >> 8 < 2**23:  # uniform_float < 0.5
            dr, dc = [(-1, 0), (1, 0), (0, -1), (0, 1)][uniform_int(rng.word(2, t, 2, 1), 4)]
            expected = [4 + dr, 4 + dc]
            moved += 1
        assert env.stag_pos.tolist() == expected, t
    assert 5 < moved < 30


def test_stag_reset_places_prey_on_distinct_free_cells() -> None:
    env = StagHuntRef(1, 0, grid_size=3, num_agents=4, num_hares=4)
    for episode in range(50):
        env.reset(episode)
        rng = EnvRng(1, 0)
        agents = [divmod(uniform_int(rng.word(episode, 0, 1, i), 9), 3) for i in range(4)]
        assert [tuple(p) for p in env.agent_pos.tolist()] == agents
        occupied = set(agents)
        stag = kth_free_cell(3, occupied, uniform_int(rng.word(episode, 0, 1, 4), 9 - len(occupied)))
        assert tuple(env.stag_pos.tolist()) == stag
        occupied.add(stag)
        for h in range(4):
            hare = kth_free_cell(3, occupied, uniform_int(rng.word(episode, 0, 1, 5 + h), 9 - len(occupied)))
            assert tuple(env.hare_pos[h].tolist()) == hare
            occupied.add(hare)


def test_stag_truncates_at_max_steps_and_never_terminates() -> None:
    env = StagHuntRef(0, 0, max_steps=4)
    env.reset(0)
    for step in range(1, 5):
        _, terminated, truncated = env.step([S_STAY] * 4)
        assert not terminated
        assert truncated == (step == 4)
    assert env.observe()[0, -1] == 1.0
    with pytest.raises(RuntimeError):
        env.step([S_STAY] * 4)


# --- batched wrapper -------------------------------------------------------------------------------


def run_batch(vec: ReferenceVecEnv, steps: int, seed: int) -> list[np.ndarray]:
    """Fixed random actions for envs 0 and 1; returns per-step copies of their obs and rewards."""
    rng = np.random.default_rng(seed)
    vec.reset()
    trace = []
    for _ in range(steps):
        actions = np.full((vec.num_envs, vec.num_agents), 4, dtype=np.int64)
        actions[:2] = rng.integers(0, 5, size=(2, vec.num_agents))
        obs, rewards, terminated, truncated, _ = vec.step(actions)
        trace.append(np.concatenate([obs[:2].reshape(-1), rewards[:2].reshape(-1), terminated[:2], truncated[:2]]))
    return trace


@pytest.mark.parametrize("name", ["alice_and_bob", "stag_hunt"])
def test_vec_env_trajectory_does_not_depend_on_num_envs(name: str) -> None:
    small = run_batch(ReferenceVecEnv(name, 2, seed=42, max_steps=12), 40, seed=0)
    large = run_batch(ReferenceVecEnv(name, 5, seed=42, max_steps=12), 40, seed=0)
    for a, b in zip(small, large):
        np.testing.assert_array_equal(a, b)
    other_seed = run_batch(ReferenceVecEnv(name, 2, seed=43, max_steps=12), 40, seed=0)
    assert any(not np.array_equal(a, b) for a, b in zip(small, other_seed))


def test_vec_env_same_step_autoreset_and_episode_rows() -> None:
    vec = ReferenceVecEnv("alice_and_bob", 2, seed=7, max_steps=50)
    obs, info = vec.reset()
    single = AliceAndBobRef(7, 0, max_steps=50)
    single.reset(0)
    np.testing.assert_array_equal(obs[0], single.observe())
    np.testing.assert_array_equal(info["state"][0], single.global_state())

    # Env 0 is one step from success; env 1 is not.
    vec.envs[0].collected = np.array([False, True])
    place(vec.envs[0], agent_pos=[[1, 7], [8, 2]])
    place(vec.envs[1], agent_pos=[[4, 4], [5, 5]])
    obs, rewards, terminated, truncated, info = vec.step(np.array([[A_STAY, A_STAY], [A_STAY, A_STAY]]))
    assert terminated.tolist() == [False, False] and rewards.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    obs, rewards, terminated, truncated, info = vec.step(np.array([[A_RIGHT, A_LEFT], [A_STAY, A_STAY]]))
    assert rewards.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert terminated.tolist() == [True, False] and truncated.tolist() == [False, False]
    assert info["final_obs"][0, 0, 9:].tolist() == [1.0, 8.0]  # agent 0 ended on button 0
    assert info["final_obs"][1].tolist() == np.zeros((2, 11)).tolist()  # rows of envs that did not end untouched
    assert info["episode_return"].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert info["episode_length"].tolist() == [2, 0] and info["episode_length"].dtype == np.int32
    assert info["success"].tolist() == [1.0, 0.0] and info["diamonds_collected"].tolist() == [2.0, 0.0]
    # Same-step reset: env 0 now shows the first observation of its episode 1.
    single.reset(1)
    np.testing.assert_array_equal(obs[0], single.observe())
    np.testing.assert_array_equal(vec.state[0], single.global_state())
    assert vec.envs[0].episode == 1 and vec.envs[1].episode == 0

    stats = vec.episode_stats()
    assert stats["episodes"] == 1 and stats["length"] == 2.0
    assert stats["return"].tolist() == [1.0, 1.0] and stats["success"] == 1.0
    assert vec.episode_stats() == {"episodes": 0}


def test_vec_env_truncation_returns_and_stats() -> None:
    vec = ReferenceVecEnv("stag_hunt", 3, seed=1, max_steps=6, reward_mode="team")
    vec.reset()
    rng = np.random.default_rng(3)
    running = np.zeros((3, 4), dtype=np.float32)
    for step in range(6):
        _, rewards, terminated, truncated, info = vec.step(rng.integers(0, 5, size=(3, 4)))
        running += rewards
        assert not terminated.any()
        assert truncated.all() == (step == 5)
    np.testing.assert_array_equal(info["episode_return"], running)
    assert info["episode_length"].tolist() == [6, 6, 6]
    assert info["final_state"][:, -1].tolist() == [1.0, 1.0, 1.0]  # t / T of the last state
    assert vec.state[:, -1].tolist() == [0.0, 0.0, 0.0]
    # Team mode: every agent's return is the whole team's catch.
    team_catch = (10 * info["stags"] + info["hares"]).sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(info["episode_return"], np.broadcast_to(team_catch, (3, 4)))
    stats = vec.episode_stats()
    assert stats["episodes"] == 3 and stats["length"] == 6.0
    np.testing.assert_allclose(stats["return"], running.mean(axis=0), rtol=1e-6)
    assert stats["stags"].shape == (4,) and stats["hares"].shape == (4,)


def test_vec_env_disabled_autoreset_raises_until_reset() -> None:
    vec = ReferenceVecEnv("alice_and_bob", 2, seed=5, autoreset="disabled", max_steps=2)
    vec.reset()
    stay = np.full((2, 2), A_STAY)
    vec.step(stay)
    _, _, _, truncated, _ = vec.step(stay)
    assert truncated.all()
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(stay)
    obs, _ = vec.reset()
    single = AliceAndBobRef(5, 1, max_steps=2)
    single.reset(1)
    np.testing.assert_array_equal(obs[1], single.observe())
    vec.step(stay)


def test_vec_env_reset_with_seed_restarts_at_episode_zero() -> None:
    vec = ReferenceVecEnv("stag_hunt", 2, seed=0)
    vec.reset()
    vec.reset()
    assert [env.episode for env in vec.envs] == [1, 1]
    obs, _ = vec.reset(seed=99)
    assert [env.episode for env in vec.envs] == [0, 0]
    single = StagHuntRef(99, 1)
    single.reset(0)
    np.testing.assert_array_equal(obs[1], single.observe())


def test_vec_env_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown env"):
        ReferenceVecEnv("chess", 2)
    with pytest.raises(TypeError, match="grid"):
        ReferenceVecEnv("alice_and_bob", 2, grid=4)
    vec = ReferenceVecEnv("alice_and_bob", 2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, 2), dtype=np.int64))
    vec.reset()
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        vec.step(np.full((2, 2), 5))
