"""Hand-computed uav_coverage physics from docs/envs.md, held against the NumPy reference and the native env.

Every test takes the `make` fixture: make(seed=..., env_index=..., **options) returns one env copy after reset(0),
with step(actions), set_positions(uav_pos, user_pos), details(), observe(), global_state(), episode_info() and the
attributes num_agents, obs_dim, state_dim, num_actions, t. The native env runs behind `NativeCopy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hmasd.envs.reference import EnvRng, ReferenceVecEnv, UavCoverageRef, uniform_float, uniform_int
from hmasd.envs.reference.uav_coverage import words

Make = Callable[..., Any]

C = 299792458.0
B20 = 20e6  # default bandwidth, Hz


def make_reference(seed: int = 0, env_index: int = 0, **options: Any) -> UavCoverageRef:
    env = UavCoverageRef(seed, env_index, **options)
    env.reset(0)
    return env


class NativeCopy:
    """Env copy `env_index` of a native batch (autoreset disabled, like a lone reference copy) with the reference's
    single-copy interface."""

    def __init__(self, seed: int = 0, env_index: int = 0, **options: Any) -> None:
        import hmasd.envs

        self.index = env_index
        self.env = hmasd.envs.make("uav_coverage", num_envs=env_index + 1, seed=seed, autoreset="disabled",
                                   **options)
        self.env.reset()
        self.num_agents, self.obs_dim, self.state_dim = self.env.num_agents, self.env.obs_dim, self.env.state_dim
        self.num_actions = self.env.num_actions

    @property
    def t(self) -> int:
        return int(self.details()["t"])

    def step(self, actions: Any) -> tuple[np.ndarray, bool, bool]:
        row = np.asarray(actions)
        batch = np.zeros((self.env.num_envs, *row.shape), dtype=np.float32 if self.env.continuous else np.int64)
        batch[:] = row  # every copy takes the same actions; only copy `index` is inspected
        self.env.step(batch)
        i = self.index
        return self.env.rewards[i].copy(), bool(self.env.terminated[i]), bool(self.env.truncated[i])

    def set_positions(self, uav_pos: Any, user_pos: Any = None) -> None:
        self.env.set_positions(self.index, uav_pos, user_pos)

    def details(self) -> dict[str, Any]:
        return self.env.details(self.index)

    def observe(self) -> np.ndarray:
        return self.env.obs[self.index].copy()

    def global_state(self) -> np.ndarray:
        return self.env.state[self.index].copy()

    def action_mask(self) -> np.ndarray:
        return self.env.action_mask[self.index].copy()

    def episode_info(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(values[self.index]).copy() for key, values in self.env.episode_info.items()}


@pytest.fixture(params=["reference", "native"])
def make(request) -> Make:
    return {"reference": make_reference, "native": NativeCopy}[request.param]


def fspl(d: float, ghz: float = 2.4) -> float:
    return 20 * math.log10(max(d, 1.0)) + 20 * math.log10(4 * math.pi * ghz * 1e9 / C)


def free_space_snr_db(d: float, tx: float = 20.0, noise: float = -104.0) -> float:
    return tx - fspl(d) - noise


def capacity(snr_db: float, bandwidth: float = B20) -> float:
    return bandwidth * math.log2(1 + 10 ** (snr_db / 10))


def one_link(make: Make, height: float, **options: Any) -> float:
    """sinr_db of one UAV straight above one user at `height` (so d = height, elevation 90 degrees)."""
    opts = {"scenario": "base_station", "num_uavs": 1, "num_users": 1, "min_height": 0.0, "max_height": 2000.0,
            "area_size": 1000.0, **options}
    env = make(**opts)
    env.set_positions([[500.0, 500.0, height]], [[500.0, 500.0]])
    return float(env.details()["sinr_db"][0, 0])


# --- path loss and SINR ------------------------------------------------------------------------


def test_free_space_path_loss_at_1_and_100_m(make: Make) -> None:
    assert abs(fspl(1.0) - 40.05) < 0.01 and abs(fspl(100.0) - 80.05) < 0.01
    # One UAV: SINR = SNR = tx - PL - noise = 20 - PL + 104.
    assert one_link(make, 1.0, channel_model="free_space") == pytest.approx(124.0 - 40.052008, abs=1e-5)
    assert one_link(make, 100.0, channel_model="free_space") == pytest.approx(124.0 - 80.052008, abs=1e-5)
    # d is floored at 1 m: 0.5 m above the user is the same as 1 m.
    assert one_link(make, 0.5, channel_model="free_space") == one_link(make, 1.0, channel_model="free_space")


def test_other_channel_models_by_hand(make: Make) -> None:
    assert one_link(make, 1000.0, channel_model="urban") == pytest.approx(124.0 - 128.1, abs=1e-9)
    assert one_link(make, 1000.0, channel_model="suburban") == pytest.approx(124.0 - 120.0, abs=1e-9)
    assert one_link(make, 100.0, channel_model="urban") == pytest.approx(124.0 - (128.1 - 37.6), abs=1e-9)
    # 3GPP 36.777 straight above (theta = 90): P_LoS = 1 / (1 + 5 exp(-51)), practically pure LoS.
    p = 1 / (1 + 5 * math.exp(-0.6 * 85))
    los = 28 + 22 * 2 + 20 * math.log10(2.4)
    nlos = 22.7 + 41 * 2 + 20 * math.log10(2.4)
    assert one_link(make, 100.0) == pytest.approx(124.0 - (p * los + (1 - p) * nlos), abs=1e-9)
    al_hourani = {"urban": (9.61, 0.16, 1, 20), "suburban": (4.88, 0.43, 0.1, 21)}
    for env_name, (a, b, eta_los, eta_nlos) in al_hourani.items():
        p = 1 / (1 + a * math.exp(-b * (90 - a)))
        expected = 124.0 - (fspl(100.0) + p * eta_los + (1 - p) * eta_nlos)
        assert one_link(make, 100.0, channel_model="al-hourani", al_hourani_env=env_name) == pytest.approx(
            expected, abs=1e-9)


def test_uav_on_the_ground_above_its_user_has_elevation_zero(make: Make) -> None:
    """h = 0 and r = 0: d is floored at 1 m and the elevation is atan2(0, 0) = 0 (the native env computes the
    distance's log and the angle with one shared division, which must stay finite here)."""
    pl_3gpp = 1 / (1 + 5 * math.exp(-0.6 * (0 - 5)))
    los, nlos = 28 + 20 * math.log10(2.4), 22.7 + 20 * math.log10(2.4)
    assert one_link(make, 0.0) == pytest.approx(124.0 - (pl_3gpp * los + (1 - pl_3gpp) * nlos), abs=1e-9)
    a, b, eta_los, eta_nlos = 9.61, 0.16, 1, 20
    p = 1 / (1 + a * math.exp(-b * (0 - a)))
    expected = 124.0 - (fspl(1.0) + p * eta_los + (1 - p) * eta_nlos)
    assert one_link(make, 0.0, channel_model="al-hourani") == pytest.approx(expected, abs=1e-9)


def test_3gpp_elevation_changes_the_los_probability(make: Make) -> None:
    env = make(scenario="base_station", num_uavs=1, num_users=1)
    env.set_positions([[100.0, 100.0, 100.0]], [[400.0, 500.0]])  # r = 500, h = 100
    r, h = 500.0, 100.0
    d = math.hypot(r, h)
    theta = math.degrees(math.atan2(h, r))
    p = 1 / (1 + 5 * math.exp(-0.6 * (theta - 5)))
    pl = p * (28 + 22 * math.log10(d) + 20 * math.log10(2.4)) + (1 - p) * (22.7 + 41 * math.log10(d)
                                                                           + 20 * math.log10(2.4))
    assert 0.3 < p < 0.99  # a real mix of LoS and NLoS
    assert env.details()["sinr_db"][0, 0] == pytest.approx(124.0 - pl, abs=1e-9)


def test_single_uav_sinr_is_its_snr_and_a_second_uav_interferes(make: Make) -> None:
    base = {"scenario": "base_station", "channel_model": "free_space", "num_users": 1}
    alone = make(num_uavs=1, **base)
    alone.set_positions([[500.0, 500.0, 100.0]], [[500.0, 500.0]])
    snr_db = free_space_snr_db(100.0)
    assert alone.details()["sinr_db"][0, 0] == pytest.approx(snr_db, abs=1e-9)

    pair = make(num_uavs=2, **base)
    pair.set_positions([[500.0, 500.0, 100.0], [800.0, 500.0, 100.0]], [[500.0, 500.0]])
    p0 = 10 ** ((20 - fspl(100.0)) / 10)
    p1 = 10 ** ((20 - fspl(math.hypot(300.0, 100.0))) / 10)
    n0 = 10 ** (-104 / 10)
    sinr_db = pair.details()["sinr_db"][:, 0]
    assert sinr_db[0] == pytest.approx(10 * math.log10(p0 / (n0 + p1)), abs=1e-9)
    assert sinr_db[1] == pytest.approx(10 * math.log10(p1 / (n0 + p0)), abs=1e-9)
    assert sinr_db[0] < snr_db - 10  # interference-limited, far below the SNR


def test_shadowing_adds_one_normal_draw_per_link(make: Make) -> None:
    kwargs = {"scenario": "base_station", "num_uavs": 1, "num_users": 1}
    plain = make(seed=4, **kwargs)
    shadowed = make(seed=4, shadowing=True, **kwargs)
    for env in (plain, shadowed):
        env.set_positions([[500.0, 500.0, 100.0]], [[500.0, 500.0]])
    rng = EnvRng(4, 0)
    u1 = (rng.word(0, 0, 4, 0) >> 8) * 2.0**-24
    u2 = (rng.word(0, 0, 4, 1) >> 8) * 2.0**-24
    gauss = math.sqrt(-2 * math.log(u1 + 2.0**-24)) * math.cos(2 * math.pi * u2)
    p = 1 / (1 + 5 * math.exp(-0.6 * 85))
    shift = (4 * p + 8 * (1 - p)) * gauss
    assert abs(shift) > 1e-3
    delta = plain.details()["sinr_db"][0, 0] - shadowed.details()["sinr_db"][0, 0]
    assert delta == pytest.approx(shift, abs=1e-9)


# --- association -------------------------------------------------------------------------------


def two_groups(make: Make, **options: Any):
    """UAV 0 above x = 100, UAV 1 above x = 900; three users near each, the third of each group the farthest."""
    opts = {"scenario": "base_station", "channel_model": "free_space", "num_uavs": 2, "num_users": 6,
            "max_connections": 2, **options}
    env = make(**opts)
    users = [[100, 500], [110, 500], [130, 500], [870, 500], [890, 500], [900, 500]]
    env.set_positions([[100.0, 500.0, 60.0], [900.0, 500.0, 60.0]], users)
    return env


def test_association_respects_max_connections(make: Make) -> None:
    env = two_groups(make)
    details = env.details()
    # Each UAV keeps its two best users; the third of each group sees the other UAV far below 0 dB.
    assert details["serving"].tolist() == [0, 0, -1, -1, 1, 1]
    assert details["metrics"]["served_users"].tolist() == [2, 2]
    assert details["metrics"]["connected_users"] == 4.0
    assert details["role"].tolist() == [1, 1]
    # With room for three, everyone is served by the nearest UAV.
    assert two_groups(make, max_connections=3).details()["serving"].tolist() == [0, 0, 0, 1, 1, 1]
    # With no SINR floor the rejected users fall back to their second choice, still within the cap.
    relaxed = two_groups(make, max_connections=3, num_users=6, min_sinr_db=-200.0)
    relaxed.set_positions(relaxed.details()["uav_pos"], [[100, 500], [101, 500], [102, 500], [103, 500],
                                                         [104, 500], [900, 500]])
    assert relaxed.details()["serving"].tolist() == [0, 0, 0, 1, 1, 1]


def test_association_many_users_never_exceeds_the_cap(make: Make) -> None:
    env = make(num_uavs=3, num_users=60, max_connections=4, min_sinr_db=-30.0)
    for _ in range(5):
        counts = np.bincount(env.details()["serving"][env.details()["serving"] >= 0], minlength=3)
        assert counts.max() <= 4
        assert counts.sum() == 12  # 60 users, every UAV full at -30 dB
        env.step(np.zeros((3, 3)))


def test_equal_sinr_ties_are_broken_by_the_random_key(make: Make) -> None:
    owners = set()
    for seed in range(12):
        env = make(seed=seed, scenario="base_station", num_uavs=2, num_users=1, min_sinr_db=-10.0)
        env.set_positions([[400.0, 500.0, 100.0], [600.0, 500.0, 100.0]], [[500.0, 500.0]])
        sinr_db = env.details()["sinr_db"][:, 0]
        assert sinr_db[0] == sinr_db[1]
        rng = EnvRng(seed, 0)
        keys = [rng.word(0, 0, 3, u * 1 + 0) for u in range(2)]
        expected = 0 if keys[0] <= keys[1] else 1
        owner = int(env.details()["serving"][0])
        assert owner == expected
        owners.add(owner)
    assert owners == {0, 1}



def test_equal_sinr_ties_at_a_full_uav_are_broken_by_the_random_key(make: Make) -> None:
    """Six users on a circle around one UAV with room for two: every SINR is equal, so the random keys alone pick
    the two served users (the native env decides this inside its deferred acceptance, not the first choice)."""
    kept = set()
    for seed in range(10):
        env = make(seed=seed, scenario="base_station", num_uavs=1, num_users=6, max_connections=2,
                   channel_model="free_space")
        users = [[500.0 + 100.0 * dx, 500.0 + 100.0 * dy] for dx, dy in
                 [(1, 0), (-1, 0), (0, 1), (0, -1), (0.6, 0.8), (-0.8, 0.6)]]
        env.set_positions([[500.0, 500.0, 100.0]], users)
        sinr_db = env.details()["sinr_db"][0]
        assert np.all(sinr_db == sinr_db[0])
        keys = [EnvRng(seed, 0).word(0, 0, 3, j) for j in range(6)]
        expected = sorted(np.argsort(keys, kind="stable")[:2].tolist())
        served = np.flatnonzero(env.details()["serving"] == 0).tolist()
        assert served == expected
        kept.add(tuple(served))
    assert len(kept) > 3  # the keys, not the user index, decide

# --- backhaul and routes -----------------------------------------------------------------------


def coop(make: Make, num_uavs: int, **options: Any):
    opts = {"channel_model": "free_space", "num_uavs": num_uavs, "num_users": 1, "area_size": 3000.0, **options}
    return make(**opts)


def test_free_space_backhaul_range_is_about_500_m() -> None:
    # 124 - FSPL(d) >= 30 dB  <=>  d <= ~500 m at 2.4 GHz.
    assert free_space_snr_db(480.0) >= 30.0 > free_space_snr_db(520.0)


def test_uav_beyond_gbs_range_relays_through_a_neighbour(make: Make) -> None:
    env = coop(make, 2, area_size=1000.0)  # GBS at (500, 500, 30)
    env.set_positions([[800.0, 500.0, 100.0], [1000.0, 900.0, 100.0]], [[0.0, 0.0]])
    d = env.details()
    assert d["gbs_pos"].tolist() == [[500.0, 500.0, 30.0]]
    assert d["gbs_links"].tolist() == [[True], [False]]
    assert d["uav_links"].tolist() == [[False, True], [True, False]]
    assert d["hops"].tolist() == [1, 2]
    assert d["next_hop"].tolist() == [2, 0]  # U + g for the GBS, then UAV 0
    assert d["role"][0] == 2  # relay
    assert d["metrics"]["avg_hops"] == 1.5 and d["metrics"]["connectivity_ratio"] == 1.0
    # Observation tail of UAV 0: role one-hot (relay), GBS flag, hops / max_hops.
    assert env.observe()[0, -5:].tolist() == [0.0, 0.0, 1.0, 1.0, np.float32(1) / np.float32(3)]
    assert env.observe()[1, -5:].tolist()[3:] == [0.0, np.float32(2) / np.float32(3)]


def chain(make: Make, max_hops: int):
    env = coop(make, 4, max_hops=max_hops)  # GBS at (1500, 1500, 30); neighbours 450 m apart
    env.set_positions([[1800.0, 1500.0, 100.0], [2250.0, 1500.0, 100.0], [2700.0, 1500.0, 100.0],
                       [2700.0, 1950.0, 100.0]], [[0.0, 0.0]])
    return env.details()


def test_route_length_limit(make: Make) -> None:
    d = chain(make, max_hops=3)
    assert d["uav_links"].sum() == 6  # only the three neighbour pairs, both ways
    assert d["hops"].tolist() == [1, 2, 3, 0]
    assert d["next_hop"].tolist() == [4, 0, 1, -1]
    assert d["role"].tolist()[:2] == [2, 2] and d["role"][2] != 2
    assert d["metrics"]["connectivity_ratio"] == 0.75
    d = chain(make, max_hops=4)
    assert d["hops"].tolist() == [1, 2, 3, 4]
    assert d["next_hop"].tolist() == [4, 0, 1, 2]
    assert d["role"].tolist()[:3] == [2, 2, 2]
    d = chain(make, max_hops=1)
    assert d["hops"].tolist() == [1, 0, 0, 0]


def test_relay_choice_maximises_the_bottleneck_not_the_nearest(make: Make) -> None:
    env = coop(make, 3, area_size=1000.0)  # GBS at (500, 500, 30)
    a, b, c = (600.0, 600.0, 100.0), (960.0, 520.0, 100.0), (900.0, 900.0, 100.0)
    env.set_positions([a, b, c], [[0.0, 0.0]])
    d = env.details()
    dist = lambda p, q: max(math.dist(p, q), 1.0)  # noqa: E731
    gbs = (500.0, 500.0, 30.0)
    via_a = min(capacity(free_space_snr_db(dist(c, a))), capacity(free_space_snr_db(dist(a, gbs))))
    via_b = min(capacity(free_space_snr_db(dist(c, b))), capacity(free_space_snr_db(dist(b, gbs))))
    assert dist(c, b) < dist(c, a) and via_a > via_b  # B is nearer, A is the better bottleneck
    assert free_space_snr_db(dist(c, gbs)) < 30.0 < free_space_snr_db(dist(b, gbs))
    assert d["hops"].tolist() == [1, 1, 2]
    assert d["next_hop"].tolist() == [3, 3, 0]


def test_gbs_layouts(make: Make) -> None:
    expected = {1: [(.5, .5)], 2: [(.25, .25), (.75, .75)], 3: [(.5, .2), (.2, .8), (.8, .8)],
                4: [(.2, .2), (.8, .2), (.2, .8), (.8, .8)], 6: [(.2, .2), (.5, .2), (.8, .2), (.2, .5), (.5, .5),
                                                                 (.8, .5)]}
    for g, fractions in expected.items():
        pos = make(n_ground_bs=g, gbs_height=25.0).details()["gbs_pos"]
        assert pos.dtype == np.float64
        assert pos.tolist() == [[1000.0 * fx, 1000.0 * fy, 25.0] for fx, fy in fractions]
    d = make(scenario="base_station", n_ground_bs=3).details()
    assert d["gbs_pos"].shape == (0, 3) and d["gbs_links"].shape == (5, 0)
    assert (d["hops"] == 0).all() and (d["next_hop"] == -1).all() and set(d["role"].tolist()) <= {0, 1}


# --- throughput and reward ---------------------------------------------------------------------


def test_throughput_full_and_equal_sharing_by_hand(make: Make) -> None:
    users = [[500.0, 500.0], [520.0, 500.0], [500.0, 540.0]]
    systems = {}
    for sharing in ("full", "equal"):
        env = make(scenario="base_station", channel_model="free_space", num_uavs=1, num_users=3,
                   bandwidth_sharing=sharing, uav_tx_power_dbm=-10.0)
        env.set_positions([[500.0, 500.0, 100.0]], users)
        snrs = [free_space_snr_db(math.hypot(x - 500, y - 500, 100), tx=-10.0) for x, y in users]
        rates = [math.log2(1 + 10 ** (snr / 10)) for snr in snrs]
        share = B20 if sharing == "full" else B20 / 3
        expected = sum(share * r for r in rates)
        metrics = env.details()["metrics"]
        assert metrics["system_throughput_mbps"] == pytest.approx(expected / 1e6, rel=1e-12)
        assert metrics["avg_throughput_per_user_mbps"] == pytest.approx(expected / 1e6 / 3, rel=1e-12)
        assert metrics["reward_throughput"] == pytest.approx(min(1.0, expected / (B20 * math.log2(1001))), rel=1e-12)
        systems[sharing] = expected
    assert systems["equal"] < B20 * math.log2(1001) < systems["full"]  # only "full" saturates the norm here


def test_throughput_norm_stays_in_unit_interval_under_equal_sharing(make: Make) -> None:
    env = make(seed=3, bandwidth_sharing="equal", num_users=40, max_steps=30)
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(30):
        env.step(rng.uniform(-1, 1, size=(5, 3)))
        metrics = env.details()["metrics"]
        seen.append(metrics["reward_throughput"])
        bound = 5 * B20 * math.log2(1001)
        assert metrics["reward_throughput"] == pytest.approx(min(1.0, metrics["system_throughput_mbps"] * 1e6 / bound))
    assert all(0.0 <= v <= 1.0 for v in seen) and max(seen) > 0.0


def test_throughput_is_capped_by_the_route(make: Make) -> None:
    # Weak GBS: a link exists (threshold 0 dB) but carries far less than the access link.
    env = make(channel_model="free_space", num_uavs=1, num_users=1, gbs_tx_power_dbm=0.0, backhaul_min_snr_db=0.0)
    env.set_positions([[500.0, 500.0, 100.0]], [[500.0, 500.0]])
    access = B20 * math.log2(1 + 10 ** (free_space_snr_db(100.0) / 10))
    route = capacity(free_space_snr_db(70.0, tx=0.0))
    assert route < access
    assert env.details()["hops"].tolist() == [1]
    assert env.details()["metrics"]["system_throughput_mbps"] == pytest.approx(route / 1e6, rel=1e-12)
    # No route at all (27 dB < 30 dB): throughput 0 even though the user is served.
    env = make(channel_model="free_space", num_uavs=1, num_users=1, gbs_tx_power_dbm=0.0)
    env.set_positions([[500.0, 500.0, 100.0]], [[500.0, 500.0]])
    assert env.details()["serving"].tolist() == [0]
    assert env.details()["metrics"]["system_throughput_mbps"] == 0.0
    assert env.details()["role"].tolist() == [1]


def test_rewards_by_hand(make: Make) -> None:
    # base_station: one UAV above one of two users, the other out of reach.
    env = make(scenario="base_station", channel_model="free_space", num_uavs=1, num_users=2, min_sinr_db=10.0,
               area_size=100000.0)
    env.set_positions([[500.0, 500.0, 100.0]], [[500.0, 500.0], [90000.0, 500.0]])
    env.step(np.zeros((1, 3)))
    snr = free_space_snr_db(100.0)
    quality = min(max((snr - 10.0) / 30.0, 0.0), 1.0)
    height = (100.0 - 50.0) / 100.0
    metrics = env.details()["metrics"]
    assert (metrics["reward_coverage"], metrics["reward_height"]) == (0.5, height)
    assert metrics["reward_quality"] == pytest.approx(quality, abs=1e-12)
    assert (metrics["reward_connectivity"], metrics["reward_hops"]) == (1.0, 0.0)
    rewards, terminated, truncated = env.step(np.zeros((1, 3)))
    assert rewards.dtype == np.float32
    assert rewards[0] == pytest.approx(0.7 * 0.5 + 0.3 * quality - 0.1 * height, abs=1e-6)

    # cooperative: the relay pair of test_uav_beyond_gbs_range_relays_through_a_neighbour, user under UAV 1.
    env = make(channel_model="free_space", num_uavs=2, num_users=1, reward_split=True)
    env.set_positions([[800.0, 500.0, 100.0], [1000.0, 900.0, 100.0]], [[1000.0, 900.0]])
    rewards, _, _ = env.step(np.zeros((2, 3)))
    m = env.details()["metrics"]
    assert (m["reward_coverage"], m["reward_connectivity"], m["reward_hops"]) == (1.0, 1.0, 1.5 / 3)
    r = 0.4 * 1.0 + 0.2 * m["reward_quality"] + 0.2 * 1.0 + 0.2 * m["reward_throughput"] - 0.1 * 0.5
    assert rewards.tolist() == [np.float32(r / 2)] * 2


# --- motion, observation, state ----------------------------------------------------------------


def test_discrete_moves_and_clipping(make: Make) -> None:
    env = make(action_type="discrete", num_uavs=7, max_speed=12.5, dt=2.0)
    assert env.num_actions == 7 and env.action_mask().shape == (7, 7) and env.action_mask().all()
    start = np.array([[500, 500, 100]] * 6 + [[990, 5, 145]], dtype=np.float32)
    env.set_positions(start)
    env.step([0, 1, 2, 3, 4, 5, 1])
    env.step([0, 0, 0, 0, 0, 0, 4])
    env.step([0, 0, 0, 0, 0, 0, 5])
    expected = start.copy()
    expected[1:6] += [[25, 0, 0], [-25, 0, 0], [0, 25, 0], [0, -25, 0], [0, 0, 25]]
    expected[6] = [1000, 0, 150]  # clipped at A, 0 and max_height
    np.testing.assert_array_equal(env.details()["uav_pos"], expected)
    env.set_positions(np.array([[500, 500, 60]] * 7, dtype=np.float32))
    env.step([6] * 7)
    assert env.details()["uav_pos"][:, 2].tolist() == [50.0] * 7


def test_continuous_moves_clip_and_round_in_float32(make: Make) -> None:
    env = make(num_uavs=2, max_speed=30.0, dt=0.1)
    pos = np.array([[123.456, 654.321, 77.7], [0.5, 999.9, 51.0]], dtype=np.float32)
    env.set_positions(pos)
    action = np.array([[0.3, -0.7, 5.0], [-1.0, 1.0, -0.2]], dtype=np.float64)
    env.step(action)
    s = np.float32(30.0) * np.float32(0.1)
    a = np.clip(action.astype(np.float32), np.float32(-1), np.float32(1))
    moved = pos + a * s
    expected = np.minimum(np.maximum(moved, np.float32([0, 0, 50])), np.float32([1000, 1000, 150]))
    got = env.details()["uav_pos"]
    assert got.dtype == np.float32
    assert got.view(np.uint32).tolist() == expected.view(np.uint32).tolist()
    assert got[1, 0] == 0.0  # clipped at the border


def test_nan_actions_raise_before_anything_moves(make: Make) -> None:
    env = make(num_uavs=2)
    before = env.details()["uav_pos"]
    for bad in (np.nan, np.inf, -np.inf):
        actions = np.zeros((2, 3))
        actions[1, 2] = bad
        with pytest.raises(ValueError, match="finite"):
            env.step(actions)
        np.testing.assert_array_equal(env.details()["uav_pos"], before)
        assert env.t == 0
    with pytest.raises(ValueError):
        env.step(np.zeros((3, 3)))
    discrete = make(action_type="discrete", num_uavs=2)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        discrete.step([0, 7])


def test_observation_and_state_layout(make: Make) -> None:
    env = make(num_uavs=3, num_users=2, n_ground_bs=2, max_steps=8, area_size=800.0)
    assert env.obs_dim == 3 + 4 + 6 + 1 + 3 + 2 + 1
    assert env.state_dim == 9 + 6 + 1
    uavs = np.array([[200, 200, 50], [400, 100, 150], [600, 600, 100]], dtype=np.float32)
    users = np.array([[200, 200], [800, 0]], dtype=np.float32)
    env.step(np.zeros((3, 3)))
    env.set_positions(uavs, users)
    d = env.details()
    area = np.float32(800)
    scaled = [[0.25, 0.25, 0.0], [0.5, 0.125, 1.0], [0.75, 0.75, 0.5]]
    obs = env.observe()
    assert obs.dtype == np.float32 and obs.shape == (3, env.obs_dim)
    for u in range(3):
        role = [0.0, 0.0, 0.0]
        role[d["role"][u]] = 1.0
        hops = float(np.float32(d["hops"][u]) / np.float32(3))
        expected = (scaled[u] + [0.25, 0.25, 1.0, 0.0] + scaled[(u + 1) % 3] + scaled[(u + 2) % 3]
                    + [float(np.float32(1) / np.float32(8))] + role + d["gbs_links"][u].astype(float).tolist()
                    + [hops])
        assert obs[u].tolist() == pytest.approx(expected, abs=0)
    assert ((obs >= 0) & (obs <= 1)).all()
    state = env.global_state()
    served = (d["serving"] >= 0).astype(float).tolist()
    assert state.tolist() == sum(scaled, []) + [0.25, 0.25, 1.0, 0.0] + [0.125] + served
    assert served[0] == 1.0  # user 0 sits right below UAV 0
    assert users[1, 0] / area == 1.0
    plain = make(scenario="base_station", num_uavs=3, num_users=2)
    assert plain.obs_dim == 3 + 4 + 6 + 1 and plain.observe().shape == (3, 14)


def test_user_grid_counts_users_and_served_users_per_cell(make: Make) -> None:
    """user_grid = 2 on an 800 m area: cells of 400 m, row-major (x, then y); users on the far edge count in the
    edge cell; the served block counts only users with a serving UAV."""
    env = make(scenario="base_station", num_uavs=2, num_users=5, max_steps=8, area_size=800.0, user_grid=2,
               max_connections=1)
    assert env.obs_dim == 3 + 4 + 3 + 1
    assert env.state_dim == 6 + 4 + 1 + 4
    uavs = np.array([[100, 100, 50], [700, 700, 50]], dtype=np.float32)
    # cells (0, 0), (0, 0), (1, 0) with x on the far edge, (0, 1), and (1, 1) at the far corner
    users = np.array([[100, 100], [120, 90], [800, 0], [10, 500], [800, 800]], dtype=np.float32)
    env.set_positions(uavs, users)
    d = env.details()
    cell_of = [0, 0, 2, 1, 3]
    counts = np.bincount(cell_of, minlength=4) / 5
    served_counts = np.bincount([c for c, j in zip(cell_of, d["serving"]) if j >= 0], minlength=4) / 5
    assert d["serving"].tolist().count(-1) >= 1  # one connection per UAV: the served block differs from the users
    expected_users = [float(np.float32(c)) for c in counts]
    obs = env.observe()
    for u in range(2):
        assert obs[u, 3:7].tolist() == expected_users
    state = env.global_state()
    assert state[6:10].tolist() == expected_users
    assert state[10] == 0.0  # t / T at the start
    assert state[11:15].tolist() == [float(np.float32(c)) for c in served_counts]
    assert sum(expected_users) == pytest.approx(1.0)


def test_uav_load_reports_served_and_unserved_users_in_range(make: Make) -> None:
    """uav_load: three users crowd UAV 0 (capacity 2), one sits under UAV 1, none near UAV 2. Obs end with every
    UAV's (served, unserved in range, offset x, offset y), own UAV first; the state ends with them in UAV order."""
    env = make(scenario="base_station", num_uavs=3, num_users=4, max_steps=8, max_connections=2, uav_load=True)
    plain = make(scenario="base_station", num_uavs=3, num_users=4, max_steps=8, max_connections=2)
    assert env.obs_dim == plain.obs_dim + 12 and env.state_dim == plain.state_dim + 12
    uavs = np.array([[100, 100, 50], [700, 700, 50], [100, 700, 50]], dtype=np.float32)
    users = np.array([[100, 100], [110, 100], [100, 120], [700, 700]], dtype=np.float32)
    env.set_positions(uavs, users)
    d = env.details()
    in_range = d["sinr_db"] >= 0.0
    assert in_range[0, :3].all() and not in_range[1:, :3].any()  # the crowd hears UAV 0 only
    assert d["serving"].tolist() == [0, 0, -1, 1]  # UAV 0 keeps its two nearest users
    assert d["unserved_in_range"].tolist() == [1, 0, 0]
    assert d["unserved_in_range"].tolist() == (in_range & (d["serving"] < 0)).sum(axis=1).tolist()
    # (served, unserved in range) / max_connections; UAV 0's users sit (0, 0) and (10, 0) m away: mean (5, 0) m
    loads = [[1.0, 0.5, float(np.float32(0.5 + 0.5 * 5.0 / 1000.0)), 0.5], [0.5, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]
    obs = env.observe()
    for u in range(3):
        assert obs[u, plain.obs_dim:].tolist() == sum((loads[(u + k) % 3] for k in range(3)), [])
        assert obs[u, :plain.obs_dim].tolist() == plain_obs_of(plain, uavs, users)[u].tolist()
    assert env.global_state()[plain.state_dim:].tolist() == sum(loads, [])


def plain_obs_of(env: Any, uavs: np.ndarray, users: np.ndarray) -> np.ndarray:
    env.set_positions(uavs, users)
    return env.observe()


def test_uav_load_caps_the_unserved_count_and_the_offset(make: Make) -> None:
    """Five users in range of a UAV that takes one: four are left, reported as 1 (= max_connections). A served user
    across the whole area reports the largest offset, one area (1.0); the other axis is 0 m (0.5)."""
    env = make(scenario="base_station", num_uavs=1, num_users=5, max_connections=1, uav_load=True)
    env.set_positions([[500.0, 500.0, 50.0]], [[500.0 + 5 * j, 500.0] for j in range(5)])
    assert env.details()["unserved_in_range"].tolist() == [4]
    assert env.observe()[0, -4:].tolist() == [1.0, 1.0, 0.5, 0.5]
    assert env.global_state()[-4:].tolist() == [1.0, 1.0, 0.5, 0.5]
    far = make(scenario="base_station", num_uavs=1, num_users=1, min_sinr_db=-1000.0, max_connections=1,
               uav_load=True)
    far.set_positions([[0.0, 0.0, 50.0]], [[1000.0, 0.0]])
    assert far.details()["serving"].tolist() == [0]
    assert far.observe()[0, -4:].tolist() == [1.0, 0.0, 1.0, 0.5]


def test_load_offset_scale_sets_the_metres_reported_as_one(make: Make) -> None:
    """load_offset_scale: UAV 0's two users sit (0, 0) and (10, 0) m away, a mean of (5, 0) m: 0.75 on x with a
    10 m scale (0.5 + 0.5 * 5 / 10), against 0.5025 in area units (the default, 0); beyond the scale it clips to 1.
    Only the offsets change: obs and state are otherwise those of the default."""
    uavs = [[100.0, 100.0, 50.0]]
    users = [[100.0, 100.0], [110.0, 100.0], [400.0, 100.0]]
    envs = {scale: make(scenario="base_station", num_uavs=1, num_users=3, max_connections=2, uav_load=True,
                        load_offset_scale=scale) for scale in (0.0, 10.0, 4.0)}
    for env in envs.values():
        env.set_positions(uavs, users)
        assert env.details()["serving"].tolist() == [0, 0, -1]
    assert envs[0.0].observe()[0, -4:].tolist() == [1.0, 0.5, float(np.float32(0.5 + 0.5 * 5.0 / 1000.0)), 0.5]
    assert envs[10.0].observe()[0, -4:].tolist() == [1.0, 0.5, 0.75, 0.5]
    assert envs[4.0].observe()[0, -4:].tolist() == [1.0, 0.5, 1.0, 0.5]  # 5 m over a 4 m scale: clipped
    assert envs[10.0].global_state()[-4:].tolist() == [1.0, 0.5, 0.75, 0.5]
    assert envs[10.0].observe()[0, :-4].tolist() == envs[0.0].observe()[0, :-4].tolist()
    assert envs[10.0].global_state()[:-4].tolist() == envs[0.0].global_state()[:-4].tolist()


def test_load_offset_scale_must_not_be_negative(make: Make) -> None:
    with pytest.raises(ValueError, match="load_offset_scale"):
        make(uav_load=True, load_offset_scale=-1.0)


# --- reset draws, determinism, episodes --------------------------------------------------------


def test_reset_draws_follow_the_formulas(make: Make) -> None:
    env = make(seed=17, env_index=3, num_uavs=2, num_users=3, min_height=40.0, max_height=140.0)
    rng = EnvRng(17, 3)
    d = env.details()
    for u in range(2):
        w = [rng.word(0, 0, 1, 3 * u + k) for k in range(3)]
        x = np.float32(1000.0) * uniform_float(w[0])
        y = np.float32(1000.0) * uniform_float(w[1])
        z = np.float32(40.0) + np.float32(100.0) * uniform_float(w[2])
        assert d["uav_pos"][u].tolist() == [x, y, z]
    unit = lambda w: (w >> 8) * 2.0**-24  # noqa: E731
    for j in range(3):
        assert d["user_pos"][j].tolist() == [np.float32(1000.0 * unit(rng.word(0, 0, 2, 2 * j + k))) for k in (0, 1)]

    env = make(seed=5, num_users=25, user_distribution="cluster")
    rng = EnvRng(5, 0)
    centres = 3  # min(5, 25 // 10 + 1)
    q = 2 * centres
    c = uniform_int(rng.word(0, 0, 2, q), centres)
    normal = lambda a, b: math.sqrt(-2 * math.log(unit(a) + 2.0**-24)) * math.cos(2 * math.pi * unit(b))  # noqa
    cx, cy = 1000.0 * unit(rng.word(0, 0, 2, 2 * c)), 1000.0 * unit(rng.word(0, 0, 2, 2 * c + 1))
    x = min(max(cx + 100.0 * normal(rng.word(0, 0, 2, q + 1), rng.word(0, 0, 2, q + 2)), 0.0), 1000.0)
    y = min(max(cy + 100.0 * normal(rng.word(0, 0, 2, q + 3), rng.word(0, 0, 2, q + 4)), 0.0), 1000.0)
    assert env.details()["user_pos"][0].tolist() == pytest.approx([np.float32(x), np.float32(y)], abs=1e-4)

    hot = make(seed=1, num_users=200, user_distribution="hotspot").details()["user_pos"]
    inside = np.hypot(hot[:, 0] - 500, hot[:, 1] - 500) <= 1000 / 3 + 1e-3
    assert 0.7 < inside.mean() < 0.9  # 70% in the disc plus the uniform ones that land there (~ 0.3 * 0.35)


def test_vectorised_words_match_envrng() -> None:
    rng = EnvRng(2**40 + 9, 6)
    assert words(rng, 3, 7, 4, 11).tolist() == [rng.word(3, 7, 4, i) for i in range(11)]


def run(make: Make, seed: int, env_index: int = 0, steps: int = 15) -> list[np.ndarray]:
    env = make(seed=seed, env_index=env_index, shadowing=True, num_users=20, user_distribution="cluster")
    actions = np.random.default_rng(1)
    trace = [env.observe().copy()]
    for _ in range(steps):
        rewards, _, _ = env.step(actions.uniform(-1, 1, size=(5, 3)))
        trace += [env.observe().copy(), env.global_state().copy(), rewards.copy()]
    return trace


def test_same_seed_same_trajectory(make: Make) -> None:
    a, b = run(make, 7), run(make, 7)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    for other in (run(make, 8), run(make, 7, env_index=1)):
        assert any(x.tobytes() != y.tobytes() for x, y in zip(a, other))


def test_episode_info_is_the_mean_over_steps(make: Make) -> None:
    env = make(seed=2, num_uavs=3, num_users=30, max_steps=4)
    assert all(not np.any(v) for v in env.episode_info().values())  # the reset's radio does not count
    history = []
    rng = np.random.default_rng(5)
    for step in range(4):
        _, terminated, truncated = env.step(rng.uniform(-1, 1, size=(3, 3)))
        assert not terminated and truncated == (step == 3)
        history.append(env.details()["metrics"])
    info = env.episode_info()
    for key in ("system_throughput_mbps", "connected_users", "reward_quality", "avg_hops", "reward_height"):
        assert info[key].shape == () and info[key].dtype == np.float32
        assert info[key] == np.float32(sum(m[key] for m in history) / 4)
    served = np.mean([m["served_users"] for m in history], axis=0)
    np.testing.assert_allclose(info["served_users"], served, rtol=1e-6)
    roles = np.array([m["role"] for m in history])
    np.testing.assert_array_equal(info["relay_fraction"], (roles == 2).mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(info["base_station_fraction"], (roles == 1).mean(axis=0).astype(np.float32))
    with pytest.raises(RuntimeError):
        env.step(np.zeros((3, 3)))


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"num_uavs": 0}, {"num_uavs": 17}, {"num_users": -1}, {"num_users": 513}, {"n_ground_bs": 0},
    {"n_ground_bs": 10}, {"min_height": 150.0, "max_height": 50.0}, {"min_height": 80.0, "max_height": 80.0},
    {"min_height": -1.0}, {"channel_model": "okumura"}, {"scenario": "mesh"}, {"action_type": "hybrid"},
    {"user_distribution": "grid"}, {"bandwidth_sharing": "fair"}, {"al_hourani_env": "rural"},
    {"area_size": 0.0}, {"dt": -1.0}, {"carrier_ghz": 0.0}, {"bandwidth_mhz": -5.0}, {"max_steps": 0},
    {"max_connections": 0}, {"max_hops": 0}, {"max_speed": -0.1}, {"area_size": float("nan")},
    {"noise_dbm": float("-inf")}, {"min_sinr_db": float("nan")}, {"shadowing": True, "channel_model": "urban"},
])
def test_bad_options_raise_value_error(make: Make, options: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):  # the message names the option
        make(**options)


def test_option_names_and_types() -> None:
    with pytest.raises(TypeError, match="height_range"):
        UavCoverageRef(0, 0, height_range=(50.0, 150.0))
    with pytest.raises(TypeError, match="num_uavs"):
        UavCoverageRef(0, 0, num_uavs=2.0)
    env = UavCoverageRef(0, 0, max_speed=0, min_height=0.0, shadowing=True)  # edge values that are allowed
    assert (env.num_agents, env.num_actions, env.action_width) == (5, 0, 3)
    assert env.obs_dim == 3 + 100 + 12 + 1 + 3 + 1 + 1 and env.state_dim == 15 + 150 + 1


# --- batched wrapper ---------------------------------------------------------------------------


def test_vec_env_continuous_and_discrete_actions() -> None:
    vec = ReferenceVecEnv("uav_coverage", 3, seed=4, max_steps=3, num_uavs=2, num_users=10)
    assert vec.action_mask.shape == (3, 2, 0) and vec.action_type == "continuous"
    vec.reset()
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((3, 2), dtype=np.int64))
    before = vec.obs.copy()
    bad = np.zeros((3, 2, 3))
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        vec.step(bad)
    np.testing.assert_array_equal(vec.obs, before)  # a refused step moves no env
    single = UavCoverageRef(4, 1, max_steps=3, num_uavs=2, num_users=10)
    single.reset(0)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(3, 3, 2, 3)).astype(np.float32)
    for step in range(3):
        _, rewards, _, truncated, info = vec.step(actions[step])
        expected_rewards, _, _ = single.step(actions[step, 1])
        np.testing.assert_array_equal(rewards[1], expected_rewards)
    assert truncated.all()
    np.testing.assert_array_equal(info["final_obs"][1], single.observe())
    assert info["served_users"].shape == (3, 2) and info["coverage_ratio"].shape == (3,)
    assert info["system_throughput_mbps"][1] == single.episode_info()["system_throughput_mbps"]
    assert vec.details(0)["uav_pos"].shape == (2, 3)
    stats = vec.episode_stats()
    assert stats["episodes"] == 3 and stats["relay_fraction"].shape == (2,)

    discrete = ReferenceVecEnv("uav_coverage", 2, seed=0, action_type="discrete")
    discrete.reset()
    assert discrete.action_mask.shape == (2, 5, 7) and discrete.action_mask.all()
    discrete.step(np.full((2, 5), 3))
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        discrete.step(np.full((2, 5), 7))
