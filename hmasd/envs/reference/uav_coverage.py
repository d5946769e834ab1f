"""Plain NumPy reference of one uav_coverage env copy, written from docs/envs.md for the native-vs-reference tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hmasd.envs.reference._options import check_choice, parse_options
from hmasd.envs.reference.philox import MASK32, EnvRng, bernoulli, philox4x32_10_np, uniform_float, uniform_int

# Readings of docs/envs.md where the text leaves a choice (the native env must make the same ones):
#
# 1. Transcendental functions (log10, log2, log, exp, pow, cos, sin, atan2) are the C library's (Python's `math`),
#    applied element by element. NumPy's own float64 versions (SIMD, e.g. AVX-512) differ from libm in the last bit
#    for log10/exp/pow/atan2, which would make bit-exact comparison with C++ `std::` calls impossible. `10^x` is
#    `pow(10, x)` (not exp10); `degrees(v)` is `v * (180 / pi)` with `180 / pi` rounded once (Python's and NumPy's
#    `degrees`). Arithmetic is IEEE float64 without fused multiply-add (the contract says "no FMA" only for
#    positions; the native build must not contract radio arithmetic either).
# 2. Every formula is evaluated left to right as written: `28 + 22 log10 d + 20 log10 fc` is `(28 + 22 log10 d) +
#    20 log10 fc`, `FSPL(d) + P eta_LoS + (1 - P) eta_NLoS` is `((FSPL + P eta_LoS) + (1 - P) eta_NLoS)`,
#    `tx - FSPL(d) - noise` is `(tx - FSPL) - noise`, `U B log2 1001` is `(U * B) * log2(1001)`, `system / 1e6 / N`
#    is `(system / 1e6) / N`, and the weighted reward sums add their terms in the written order.
# 3. Radio distances use the float32 positions widened to float64 before subtracting; `d = max(sqrt((dx^2 + dy^2)
#    + h^2), 1)` with `x^2 = x * x`; the elevation uses the unfloored horizontal `r`. Users are at height 0.
# 4. Float option values (`area_size`, heights, powers) enter the float64 radio and user placement unrounded; only
#    where the contract says float32 (UAV placement, moves, observations) are they rounded to float32. GBS g is at
#    `(A * fx, A * fy, gbs_height)` in float64 with the float64 option A.
# 5. Association sorts by decreasing linear `sinr` (not `sinr_db`); candidates are chosen with `sinr_db >=
#    min_sinr_db`. A zero received power gives `sinr_db = -inf` (never a candidate).
# 6. A GBS link is the UAV-GBS SNR `>= backhaul_min_snr_db`; the same threshold makes UAV-UAV links, which are
#    symmetric. In `base_station` the backhaul is not evaluated: there are no GBS (`gbs_pos [0, 3]`, `gbs_links
#    [U, 0]`), `uav_links` is all false, `hops = 0`, `next_hop = -1`.
# 7. `connectivity_ratio` is the connectivity term, so it is 1 in `base_station` like `reward_connectivity`;
#    `avg_hops` is the mean hops of routed UAVs (0 when none, hence always 0 in `base_station`).
# 8. `height` uses the mean of the float64-widened `z_u` summed in UAV order and divided by U, and the float64
#    option values `min_height`, `max_height`.
# 9. Continuous actions: "non-finite" is judged on the values as given (a float64 1e300 is finite: it is rounded
#    to float32 inf and clipped to 1). Integer arrays are accepted as continuous actions; bool arrays are not.
# 10. Episode info: each mean is a float64 running sum over the steps (in step order) divided by the number of steps,
#     then rounded to float32; all zeros for an episode without steps. Per-step metrics are kept as float64 scalars
#     (`connected_users` too) and int32 `served_users`/`role` arrays. `reward_height` is reported in both scenarios.
# 11. Two float32 height spans, as written: the reset uses `float32(max_height - min_height)` (float64 difference),
#     `Z` uses `float32(max_height) - float32(min_height)` (float32 difference). The reset's z is not clipped.
# 12. Validation: the "counts" are num_uavs, num_users, n_ground_bs (n_ground_bs is checked in `base_station` too);
#     max_steps, max_connections, max_hops need >= 1 and have no upper bound; max_speed = 0 and min_height = 0 are
#     valid; al_hourani_env is checked whatever the channel model; other numbers (powers, thresholds, gbs_height)
#     only need to be finite.
# 13. Tie keys compare as unsigned 32-bit integers. `hops` and `next_hop` in details() are int32 like `role`.
# 14. set_positions (a test hook, not in the contract) re-evaluates the radio at the current t, so it reuses that
#     t's tie-key and shadowing words; it does not count towards the episode statistics.

DEFAULTS: dict[str, Any] = {
    "scenario": "cooperative_network",
    "num_uavs": 5,
    "num_users": 50,
    "area_size": 1000.0,
    "min_height": 50.0,
    "max_height": 150.0,
    "max_speed": 30.0,
    "dt": 1.0,
    "max_steps": 500,
    "user_distribution": "uniform",
    "action_type": "continuous",
    "bandwidth_sharing": "full",
    "reward_split": False,
    "channel_model": "3gpp-36777",
    "shadowing": False,
    "al_hourani_env": "urban",
    "carrier_ghz": 2.4,
    "bandwidth_mhz": 20.0,
    "uav_tx_power_dbm": 20.0,
    "noise_dbm": -104.0,
    "min_sinr_db": 0.0,
    "max_connections": 10,
    "n_ground_bs": 1,
    "gbs_height": 30.0,
    "gbs_tx_power_dbm": 20.0,
    "backhaul_min_snr_db": 30.0,
    "max_hops": 3,
    "user_grid": 0,
    "uav_load": False,
    "load_offset_scale": 0.0,
}

# The names of each choice option, in the order of the native option table (tests/test_env_options.py holds this
# module's DEFAULTS and CHOICES equal to that table).
CHOICES: dict[str, tuple[str, ...]] = {
    "scenario": ("base_station", "cooperative_network"),
    "user_distribution": ("uniform", "cluster", "hotspot"),
    "action_type": ("continuous", "discrete"),
    "bandwidth_sharing": ("full", "equal"),
    "channel_model": ("free_space", "urban", "suburban", "3gpp-36777", "al-hourani"),
    "al_hourani_env": ("urban", "suburban"),
}

COUNT_RANGES: dict[str, tuple[int, int]] = {"num_uavs": (1, 16), "num_users": (1, 512), "n_ground_bs": (1, 9),
                                            "user_grid": (0, 32)}
POSITIVE = ("area_size", "dt", "carrier_ghz", "bandwidth_mhz", "max_steps", "max_connections", "max_hops")

PURPOSE_UAV, PURPOSE_USER, PURPOSE_TIE, PURPOSE_SHADOW = 1, 2, 3, 4

SPEED_OF_LIGHT = 299792458.0
RAD_TO_DEG = 180.0 / math.pi
TWO_POW_M24 = 2.0**-24
AL_HOURANI = {"urban": (9.61, 0.16, 1.0, 20.0), "suburban": (4.88, 0.43, 0.1, 21.0)}

# Discrete action -> unit move (x, y, z): 0 hover, 1 +x, 2 -x, 3 +y, 4 -y, 5 +z, 6 -z.
DISCRETE_MOVES = np.array(
    [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32
)

ROLE_UNASSIGNED, ROLE_BASE_STATION, ROLE_RELAY = 0, 1, 2

SCALAR_METRICS = (
    "system_throughput_mbps",
    "avg_throughput_per_user_mbps",
    "connected_users",
    "coverage_ratio",
    "connectivity_ratio",
    "avg_hops",
    "reward_coverage",
    "reward_quality",
    "reward_connectivity",
    "reward_throughput",
    "reward_height",
    "reward_hops",
)


# --- libm, element by element, with IEEE results instead of Python exceptions ----------------------------------


def _ieee(fn: Callable[..., float]) -> Callable[..., np.ndarray]:
    def safe(*args: float) -> float:
        try:
            return fn(*args)
        except OverflowError:  # exp / pow overflow: C returns +inf
            return math.inf
        except ValueError:  # log of 0 is -inf in C, of a negative number NaN
            return -math.inf if args[0] == 0 else math.nan

    return np.vectorize(safe, otypes=[np.float64])


log10 = _ieee(math.log10)
log2 = _ieee(math.log2)
ln = _ieee(math.log)
exp = _ieee(math.exp)
cos = _ieee(math.cos)
sin = _ieee(math.sin)
atan2 = _ieee(math.atan2)
pow10 = _ieee(lambda x: math.pow(10.0, x))


# --- random helpers ----------------------------------------------------------------------------------------------


def unit(w: np.ndarray | int) -> np.ndarray:
    """float64 in [0, 1) from the top 24 bits of a word (exact)."""
    return (np.asarray(w, dtype=np.uint64) >> np.uint64(8)).astype(np.float64) * TWO_POW_M24


def normal(w1: np.ndarray | int, w2: np.ndarray | int) -> np.ndarray:
    """One Box-Muller value per pair of words."""
    return np.sqrt(-2.0 * ln(unit(w1) + TWO_POW_M24)) * cos(2.0 * math.pi * unit(w2))


def words(rng: EnvRng, episode: int, t: int, purpose: int, count: int) -> np.ndarray:
    """word(t, purpose, i) for i = 0 .. count-1 as uint32[count], the vectorised EnvRng.word."""
    blocks = (count + 3) // 4
    counter = np.zeros((blocks, 4), dtype=np.uint64)
    counter[:, 0] = t & MASK32
    counter[:, 1] = episode & MASK32
    counter[:, 2] = ((purpose << 16) | np.arange(blocks, dtype=np.uint64)) & MASK32
    counter[:, 3] = rng.seed >> 32
    key = np.array([rng.seed & MASK32, rng.env_index], dtype=np.uint64)
    return philox4x32_10_np(counter, key).reshape(-1)[:count]


# --- geometry and path loss (float64) ----------------------------------------------------------------------------


def gbs_fractions(g: int) -> list[tuple[float, float]]:
    """Where the G ground base stations stand, as fractions of the area side."""
    fixed = {
        1: [(0.5, 0.5)],
        2: [(0.25, 0.25), (0.75, 0.75)],
        3: [(0.5, 0.2), (0.2, 0.8), (0.8, 0.8)],
        4: [(0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8)],
    }
    if g in fixed:
        return fixed[g]
    grid = [(fx, fy) for fy in (0.2, 0.5, 0.8) for fx in (0.2, 0.5, 0.8)]  # y outer, x inner
    return grid[:g]


def distance_3d(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """max(sqrt(dx^2 + dy^2 + dz^2), 1): every distance of the model is floored at 1 m."""
    return np.maximum(np.sqrt((dx * dx + dy * dy) + dz * dz), 1.0)


def fspl_db(d: np.ndarray, carrier_ghz: float) -> np.ndarray:
    """Free-space path loss 20 log10 d + 20 log10(4 pi f / c)."""
    f = carrier_ghz * 1e9
    return 20.0 * log10(d) + 20.0 * math.log10(4.0 * math.pi * f / SPEED_OF_LIGHT)


@dataclass
class Radio:
    """Everything one radio evaluation yields (docs/envs.md, steps 3-7)."""

    sinr: np.ndarray  # float64 [U, N], linear
    sinr_db: np.ndarray  # float64 [U, N]
    serving: np.ndarray  # int32 [N], UAV or -1
    gbs_links: np.ndarray  # bool [U, G]
    uav_links: np.ndarray  # bool [U, U], diagonal false
    hops: np.ndarray  # int32 [U], 0 without a route
    next_hop: np.ndarray  # int32 [U]: UAV index, U + g for GBS g, -1
    route_capacity: np.ndarray  # float64 [U]
    role: np.ndarray  # int32 [U]
    unserved_in_range: np.ndarray  # int32 [U]: unserved users whose link to the UAV clears min_sinr_db
    metrics: dict[str, Any]
    reward: float  # float64, before the float32 rounding


class UavCoverageRef:
    """One copy of uav_coverage: U UAVs serving N static ground users, with multi-hop backhaul to ground stations.

    Tests may assign positions with `set_positions`, which re-evaluates the radio at the current `t`.
    """

    def __init__(self, seed: int, env_index: int, **options: Any) -> None:
        opts = parse_options("uav_coverage", DEFAULTS, options)
        self._validate(opts)
        self.options = opts
        self.scenario: str = opts["scenario"]
        self.cooperative = self.scenario == "cooperative_network"
        self.num_uavs: int = opts["num_uavs"]
        self.num_users: int = opts["num_users"]
        self.num_gbs: int = opts["n_ground_bs"] if self.cooperative else 0
        self.max_steps: int = opts["max_steps"]
        self.max_hops: int = opts["max_hops"]
        self.area = float(opts["area_size"])
        self.min_height = float(opts["min_height"])
        self.max_height = float(opts["max_height"])
        self.action_type: str = opts["action_type"]
        self.num_agents = self.num_uavs
        self.num_actions = 7 if self.action_type == "discrete" else 0
        self.action_width = 1 if self.action_type == "discrete" else 3

        u, n, g = self.num_uavs, self.num_users, self.num_gbs
        self.user_grid: int = opts["user_grid"]
        users_width, served_width = (self.user_grid ** 2, self.user_grid ** 2) if self.user_grid else (2 * n, n)
        self.uav_load: bool = opts["uav_load"]
        self.load_offset_scale = float(opts["load_offset_scale"]) or self.area  # 0: the area size
        load_width = 4 * u if self.uav_load else 0
        self.obs_dim = 3 + users_width + 3 * (u - 1) + 1 + (3 + g + 1 if self.cooperative else 0) + load_width
        self.state_dim = 3 * u + users_width + 1 + served_width + load_width
        self.gbs_pos = np.array(
            [[self.area * fx, self.area * fy, float(opts["gbs_height"])] for fx, fy in gbs_fractions(g)],
            dtype=np.float64,
        ).reshape(g, 3)
        self.rng = EnvRng(seed, env_index)
        self.episode = 0
        self.t = 0
        self.done = False
        self.uav_pos = np.zeros((u, 3), dtype=np.float32)
        self.user_pos = np.zeros((n, 2), dtype=np.float32)
        self.radio: Radio | None = None
        self._clear_episode_sums()

    @staticmethod
    def _validate(opts: dict[str, Any]) -> None:
        name = "uav_coverage"
        for option, choices in CHOICES.items():
            check_choice(name, option, opts[option], choices)
        for option, value in opts.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}: option {option!r} must be finite, got {value!r}")
        for option, (low, high) in COUNT_RANGES.items():
            if not low <= opts[option] <= high:
                raise ValueError(f"{name}: option {option!r} must be in [{low}, {high}], got {opts[option]!r}")
        for option in POSITIVE:
            if opts[option] <= 0:
                raise ValueError(f"{name}: option {option!r} must be > 0, got {opts[option]!r}")
        for option in ("max_speed", "load_offset_scale"):
            if opts[option] < 0:
                raise ValueError(f"{name}: option {option!r} must be >= 0, got {opts[option]!r}")
        if opts["min_height"] < 0 or opts["min_height"] >= opts["max_height"]:
            raise ValueError(
                f"{name}: need 0 <= min_height < max_height, got {opts['min_height']!r}, {opts['max_height']!r}"
            )
        if opts["shadowing"] and opts["channel_model"] != "3gpp-36777":
            raise ValueError(f"{name}: 'shadowing' needs channel_model '3gpp-36777', got {opts['channel_model']!r}")

    # --- reset -------------------------------------------------------------------------------------

    def _word(self, purpose: int, index: int) -> int:
        return self.rng.word(self.episode, 0, purpose, index)

    def reset(self, episode: int) -> None:
        self.episode = int(episode)
        self.t = 0
        self.done = False
        self._clear_episode_sums()
        self._place_uavs()
        self._place_users()
        # The reset's radio gives the first observation its roles and routes, but no reward and no statistics.
        self.radio = self._evaluate_radio()

    def _place_uavs(self) -> None:
        area = np.float32(self.area)
        low = np.float32(self.min_height)
        span = np.float32(self.max_height - self.min_height)  # difference in float64, then rounded
        for u in range(self.num_uavs):
            self.uav_pos[u, 0] = area * uniform_float(self._word(PURPOSE_UAV, 3 * u))
            self.uav_pos[u, 1] = area * uniform_float(self._word(PURPOSE_UAV, 3 * u + 1))
            self.uav_pos[u, 2] = low + span * uniform_float(self._word(PURPOSE_UAV, 3 * u + 2))

    def _place_users(self) -> None:
        placement = {"uniform": self._user_uniform, "cluster": self._user_cluster, "hotspot": self._user_hotspot}
        place = placement[self.options["user_distribution"]]
        for j in range(self.num_users):
            x, y = place(j)
            self.user_pos[j] = (np.float32(x), np.float32(y))

    def _unit(self, index: int) -> float:
        return float(unit(self._word(PURPOSE_USER, index)))

    def _user_uniform(self, j: int) -> tuple[float, float]:
        return self.area * self._unit(2 * j), self.area * self._unit(2 * j + 1)

    def _user_cluster(self, j: int) -> tuple[float, float]:
        a = self.area
        centres = min(5, self.num_users // 10 + 1)
        q = 2 * centres + 5 * j
        c = uniform_int(self._word(PURPOSE_USER, q), centres)
        cx, cy = a * self._unit(2 * c), a * self._unit(2 * c + 1)
        nx = float(normal(self._word(PURPOSE_USER, q + 1), self._word(PURPOSE_USER, q + 2)))
        ny = float(normal(self._word(PURPOSE_USER, q + 3), self._word(PURPOSE_USER, q + 4)))
        x = min(max(cx + (a / 10.0) * nx, 0.0), a)
        y = min(max(cy + (a / 10.0) * ny, 0.0), a)
        return x, y

    def _user_hotspot(self, j: int) -> tuple[float, float]:
        q = 3 * j
        a, b = self._unit(q + 1), self._unit(q + 2)
        if bernoulli(self._word(PURPOSE_USER, q), 0.7):
            r = (self.area / 3.0) * a
            phi = 2.0 * math.pi * b
            return self.area / 2.0 + r * float(cos(phi)), self.area / 2.0 + r * float(sin(phi))
        return self.area * a, self.area * b

    # --- step --------------------------------------------------------------------------------------

    def step(self, actions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, bool, bool]:
        if self.done:
            raise RuntimeError("uav_coverage: step() on a finished episode; call reset() first")
        if self.radio is None:
            raise RuntimeError("uav_coverage: step() before reset()")
        move = self._action_vectors(actions)  # validates everything before any UAV moves
        self._move(move)
        self.t += 1
        self.radio = self._evaluate_radio()
        self._accumulate(self.radio.metrics)
        r = self.radio.reward / self.num_uavs if self.options["reward_split"] else self.radio.reward
        rewards = np.full(self.num_uavs, np.float32(r), dtype=np.float32)
        truncated = self.t >= self.max_steps
        self.done = truncated
        return rewards, False, truncated

    def _action_vectors(self, actions: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 [U, 3] unit moves from the actions, or ValueError."""
        u = self.num_uavs
        if self.action_type == "discrete":
            if len(actions) != u:
                raise ValueError(f"uav_coverage: expected {u} actions, got {len(actions)}")
            for i, action in enumerate(actions):
                if not 0 <= int(action) < 7:
                    raise ValueError(f"uav_coverage: action {int(action)} of UAV {i} is not in [0, 7)")
            return DISCRETE_MOVES[[int(a) for a in actions]]
        values = np.asarray(actions)
        if values.shape != (u, 3) or not (
            np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
        ):
            raise ValueError(
                f"uav_coverage: expected real actions of shape {(u, 3)}, got {values.dtype} {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError("uav_coverage: continuous actions must be finite")
        with np.errstate(over="ignore"):
            return np.clip(values.astype(np.float32), np.float32(-1.0), np.float32(1.0))

    def _move(self, move: np.ndarray) -> None:
        """Each coordinate: clip(p + a * s, low, high), every operation rounded to float32."""
        s = np.float32(self.options["max_speed"]) * np.float32(self.options["dt"])
        low = np.array([0.0, 0.0, self.min_height], dtype=np.float32)
        high = np.array([self.area, self.area, self.max_height], dtype=np.float32)
        moved = self.uav_pos + move * s
        self.uav_pos[:] = np.minimum(np.maximum(moved, low), high)

    def set_positions(self, uav_pos: np.ndarray, user_pos: np.ndarray | None = None) -> None:
        """Place UAVs (float32 [U, 3]) and optionally users (float32 [N, 2]), then re-evaluate the radio at t."""
        uav = np.asarray(uav_pos, dtype=np.float32)
        if uav.shape != self.uav_pos.shape:
            raise ValueError(f"uav_pos must have shape {self.uav_pos.shape}, got {uav.shape}")
        self.uav_pos[:] = uav
        if user_pos is not None:
            users = np.asarray(user_pos, dtype=np.float32)
            if users.shape != self.user_pos.shape:
                raise ValueError(f"user_pos must have shape {self.user_pos.shape}, got {users.shape}")
            self.user_pos[:] = users
        self.radio = self._evaluate_radio()

    # --- radio: access links and association (steps 3-4) ----------------------------------------

    def _evaluate_radio(self) -> Radio:
        sinr, sinr_db = self._access_sinr()
        serving = self._associate(sinr, sinr_db)
        u = self.num_uavs
        gbs_links = np.zeros((u, self.num_gbs), dtype=bool)
        uav_links = np.zeros((u, u), dtype=bool)
        hops = np.zeros(u, dtype=np.int32)
        next_hop = np.full(u, -1, dtype=np.int32)
        route_capacity = np.zeros(u, dtype=np.float64)
        if self.cooperative:
            gbs_snr, gbs_links, gbs_cap, uav_links, uav_cap = self._backhaul_links()
            hops, next_hop, route_capacity = self._routes(gbs_snr, gbs_links, gbs_cap, uav_links, uav_cap)
        role = self._roles(next_hop, serving)
        in_range = sinr_db >= self.options["min_sinr_db"]
        unserved_in_range = (in_range & (serving < 0)[None, :]).sum(axis=1).astype(np.int32)
        system = self._system_throughput(sinr, serving, hops, route_capacity)
        metrics, reward = self._metrics(sinr_db, serving, hops, role, system)
        return Radio(sinr, sinr_db, serving, gbs_links, uav_links, hops, next_hop, route_capacity, role,
                     unserved_in_range, metrics, reward)

    def _access_sinr(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear and dB SINR [U, N] of every UAV-user link, interference summed in UAV index order."""
        uav = self.uav_pos.astype(np.float64)
        user = self.user_pos.astype(np.float64)
        dx = uav[:, None, 0] - user[None, :, 0]
        dy = uav[:, None, 1] - user[None, :, 1]
        h = np.broadcast_to(uav[:, None, 2], dx.shape)
        r = np.sqrt(dx * dx + dy * dy)
        d = distance_3d(dx, dy, h)
        theta = atan2(h, r) * RAD_TO_DEG
        path_loss = self._access_path_loss_db(d, theta)
        p = pow10((self.options["uav_tx_power_dbm"] - path_loss) / 10.0)
        n0 = math.pow(10.0, self.options["noise_dbm"] / 10.0)
        total = np.zeros(self.num_users, dtype=np.float64)
        for u in range(self.num_uavs):
            total = total + p[u]
        with np.errstate(divide="ignore", invalid="ignore"):
            sinr = p / (n0 + (total[None, :] - p))
        return sinr, 10.0 * log10(sinr)

    def _access_path_loss_db(self, d: np.ndarray, theta: np.ndarray) -> np.ndarray:
        model = self.options["channel_model"]
        fc = self.options["carrier_ghz"]
        if model == "free_space":
            return fspl_db(d, fc)
        if model == "urban":
            return 128.1 + 37.6 * log10(d / 1000.0)
        if model == "suburban":
            return 120.0 + 35.0 * log10(d / 1000.0)
        if model == "al-hourani":
            a, b, eta_los, eta_nlos = AL_HOURANI[self.options["al_hourani_env"]]
            p_los = 1.0 / (1.0 + a * exp(-b * (theta - a)))
            return fspl_db(d, fc) + p_los * eta_los + (1.0 - p_los) * eta_nlos
        p_los = 1.0 / (1.0 + 5.0 * exp(-0.6 * (theta - 5.0)))
        los = 28.0 + 22.0 * log10(d) + 20.0 * math.log10(fc)
        nlos = 22.7 + 41.0 * log10(d) + 20.0 * math.log10(fc)
        path_loss = p_los * los + (1.0 - p_los) * nlos
        if self.options["shadowing"]:
            # Link k = u N + j draws words 2k and 2k+1: row-major over [U, N] matches k.
            w = words(self.rng, self.episode, self.t, PURPOSE_SHADOW, 2 * d.size).reshape(d.shape + (2,))
            path_loss = path_loss + (4.0 * p_los + 8.0 * (1.0 - p_los)) * normal(w[..., 0], w[..., 1])
        return path_loss

    def _associate(self, sinr: np.ndarray, sinr_db: np.ndarray) -> np.ndarray:
        """Greedy by decreasing SINR, ties by the random key then by u N + j, under max_connections."""
        n = self.num_users
        keys = words(self.rng, self.episode, self.t, PURPOSE_TIE, self.num_uavs * n)
        cand_u, cand_j = np.nonzero(sinr_db >= self.options["min_sinr_db"])
        link = cand_u * n + cand_j
        # lexsort sorts by its last key first: -sinr (exact negation), then the word, then the link index.
        order = np.lexsort((link, keys[link], -sinr[cand_u, cand_j]))
        serving = np.full(n, -1, dtype=np.int32)
        load = np.zeros(self.num_uavs, dtype=np.int64)
        for i in order:
            u, j = int(cand_u[i]), int(cand_j[i])
            if serving[j] == -1 and load[u] < self.options["max_connections"]:
                serving[j] = u
                load[u] += 1
        return serving

    # --- radio: backhaul and routes (step 5) ------------------------------------------------------

    def _link_capacity(self, snr_db: np.ndarray) -> np.ndarray:
        bandwidth = self.options["bandwidth_mhz"] * 1e6
        return bandwidth * log2(1.0 + pow10(snr_db / 10.0))

    def _backhaul_links(self) -> tuple[np.ndarray, ...]:
        """SNR, link flags and capacities of UAV-GBS [U, G] and UAV-UAV [U, U] links (free space)."""
        opts = self.options
        uav = self.uav_pos.astype(np.float64)
        delta = uav[:, None, :] - self.gbs_pos[None, :, :]
        d = distance_3d(delta[..., 0], delta[..., 1], delta[..., 2])
        gbs_snr = (opts["gbs_tx_power_dbm"] - fspl_db(d, opts["carrier_ghz"])) - opts["noise_dbm"]
        gbs_links = gbs_snr >= opts["backhaul_min_snr_db"]
        delta = uav[:, None, :] - uav[None, :, :]
        d = distance_3d(delta[..., 0], delta[..., 1], delta[..., 2])
        uav_snr = (opts["uav_tx_power_dbm"] - fspl_db(d, opts["carrier_ghz"])) - opts["noise_dbm"]
        uav_links = uav_snr >= opts["backhaul_min_snr_db"]
        np.fill_diagonal(uav_links, False)
        return gbs_snr, gbs_links, self._link_capacity(gbs_snr), uav_links, self._link_capacity(uav_snr)

    def _routes(self, gbs_snr: np.ndarray, gbs_links: np.ndarray, gbs_cap: np.ndarray, uav_links: np.ndarray,
                uav_cap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layered routes: hop 1 to the best GBS, hop k through the best UAV of layer k - 1."""
        u_count = self.num_uavs
        hops = np.zeros(u_count, dtype=np.int32)
        next_hop = np.full(u_count, -1, dtype=np.int32)
        capacity = np.zeros(u_count, dtype=np.float64)
        for u in range(u_count):
            best = -1
            for g in range(self.num_gbs):  # strict > keeps the lower index on ties
                if gbs_links[u, g] and (best < 0 or gbs_snr[u, g] > gbs_snr[u, best]):
                    best = g
            if best >= 0:
                hops[u], next_hop[u], capacity[u] = 1, u_count + best, gbs_cap[u, best]
        for k in range(2, self.max_hops + 1):
            found: list[tuple[int, int, float]] = []
            for u in range(u_count):
                if hops[u] != 0:
                    continue
                best, best_value = -1, 0.0
                for v in range(u_count):
                    if uav_links[u, v] and hops[v] == k - 1:
                        value = min(uav_cap[u, v], capacity[v])
                        if best < 0 or value > best_value:
                            best, best_value = v, value
                if best >= 0:
                    found.append((u, best, best_value))
            # Applied after the whole layer: a UAV of layer k relays only through layer k - 1.
            for u, v, value in found:
                hops[u], next_hop[u], capacity[u] = k, v, value
        return hops, next_hop, capacity

    def _roles(self, next_hop: np.ndarray, serving: np.ndarray) -> np.ndarray:
        role = np.full(self.num_uavs, ROLE_UNASSIGNED, dtype=np.int32)
        for u in range(self.num_uavs):
            if any(next_hop[v] == u for v in range(self.num_uavs) if v != u):
                role[u] = ROLE_RELAY
            elif (serving == u).any():
                role[u] = ROLE_BASE_STATION
        return role

    # --- radio: throughput and reward (steps 6-7) -------------------------------------------------

    def _system_throughput(self, sinr: np.ndarray, serving: np.ndarray, hops: np.ndarray,
                           route_capacity: np.ndarray) -> float:
        bandwidth = self.options["bandwidth_mhz"] * 1e6
        load = np.bincount(serving[serving >= 0], minlength=self.num_uavs)
        sum_rate = np.zeros(self.num_uavs, dtype=np.float64)
        for j in range(self.num_users):  # user index order within each UAV's sum
            u = int(serving[j])
            if u < 0:
                continue
            share = bandwidth if self.options["bandwidth_sharing"] == "full" else bandwidth / float(load[u])
            sum_rate[u] += share * float(log2(1.0 + sinr[u, j]))
        system = 0.0
        for u in range(self.num_uavs):
            if not self.cooperative:
                throughput = float(sum_rate[u])
            elif hops[u] > 0:
                throughput = min(float(sum_rate[u]), float(route_capacity[u]) / float(hops[u]))
            else:
                throughput = 0.0
            system += throughput
        return system

    def _metrics(self, sinr_db: np.ndarray, serving: np.ndarray, hops: np.ndarray, role: np.ndarray,
                 system: float) -> tuple[dict[str, Any], float]:
        u_count, n = self.num_uavs, self.num_users
        min_sinr = self.options["min_sinr_db"]
        served = [j for j in range(n) if serving[j] >= 0]
        coverage = len(served) / n
        quality_sum = 0.0
        for j in served:
            quality_sum += min(max((float(sinr_db[serving[j], j]) - min_sinr) / 30.0, 0.0), 1.0)
        quality = quality_sum / len(served) if served else 0.0
        z_sum = 0.0
        for u in range(u_count):
            z_sum += float(self.uav_pos[u, 2])
        height = (z_sum / u_count - self.min_height) / (self.max_height - self.min_height)
        routed = [u for u in range(u_count) if hops[u] > 0]
        hop_sum = 0.0
        for u in routed:
            hop_sum += float(hops[u])
        avg_hops = hop_sum / len(routed) if routed else 0.0
        connectivity = len(routed) / u_count if self.cooperative else 1.0
        hops_norm = avg_hops / self.max_hops if self.cooperative else 0.0
        bandwidth = self.options["bandwidth_mhz"] * 1e6
        throughput_norm = min(1.0, system / (u_count * bandwidth * math.log2(1001.0)))
        if self.cooperative:
            reward = 0.4 * coverage + 0.2 * quality + 0.2 * connectivity + 0.2 * throughput_norm - 0.1 * hops_norm
        else:
            reward = 0.7 * coverage + 0.3 * quality - 0.1 * height
        metrics: dict[str, Any] = {
            "system_throughput_mbps": system / 1e6,
            "avg_throughput_per_user_mbps": system / 1e6 / n,
            "connected_users": float(len(served)),
            "coverage_ratio": coverage,
            "connectivity_ratio": connectivity,
            "avg_hops": avg_hops,
            "reward_coverage": coverage,
            "reward_quality": quality,
            "reward_connectivity": connectivity,
            "reward_throughput": throughput_norm,
            "reward_height": height,
            "reward_hops": hops_norm,
            "served_users": np.bincount(serving[serving >= 0], minlength=u_count).astype(np.int32),
            "role": role.copy(),
        }
        return metrics, reward

    # --- episode statistics ------------------------------------------------------------------------

    def _clear_episode_sums(self) -> None:
        self._sums = dict.fromkeys(SCALAR_METRICS, 0.0)
        self._served_sum = np.zeros(self.num_uavs, dtype=np.float64)
        self._relay_steps = np.zeros(self.num_uavs, dtype=np.int64)
        self._base_station_steps = np.zeros(self.num_uavs, dtype=np.int64)

    def _accumulate(self, metrics: dict[str, Any]) -> None:
        for key in SCALAR_METRICS:
            self._sums[key] += metrics[key]
        self._served_sum += metrics["served_users"]
        self._relay_steps += metrics["role"] == ROLE_RELAY
        self._base_station_steps += metrics["role"] == ROLE_BASE_STATION

    def episode_info(self) -> dict[str, np.ndarray]:
        """Means over the steps of the current episode: scalars as 0-d float32, per-UAV fields as float32[U]."""
        steps = float(self.t) if self.t > 0 else 1.0  # no step yet: every sum is 0, and so is the mean
        info = {key: np.array(self._sums[key] / steps, dtype=np.float32) for key in SCALAR_METRICS}
        info["served_users"] = (self._served_sum / steps).astype(np.float32)
        info["relay_fraction"] = (self._relay_steps / steps).astype(np.float32)
        info["base_station_fraction"] = (self._base_station_steps / steps).astype(np.float32)
        return info

    # --- views -------------------------------------------------------------------------------------

    def _scaled_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(X(x), X(y), Z(z)) of every UAV [U, 3] and (X(x), X(y)) of every user [N, 2], float32 operations."""
        area = np.float32(self.area)
        low, high = np.float32(self.min_height), np.float32(self.max_height)
        uav = np.empty((self.num_uavs, 3), dtype=np.float32)
        uav[:, :2] = self.uav_pos[:, :2] / area
        uav[:, 2] = (self.uav_pos[:, 2] - low) / (high - low)
        return uav, self.user_pos / area

    def _time_feature(self) -> np.float32:
        return np.float32(self.t) / np.float32(self.max_steps)

    def _user_grid(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Users and served users per cell of the ``user_grid`` x ``user_grid`` grid (row-major, x then y; a point
        outside the area counts in the nearest edge cell), each as a fraction of all users."""
        grid = self.user_grid
        cells = np.clip(users * np.float32(grid), 0, grid - 1).astype(np.int32)
        index = cells[:, 0] * grid + cells[:, 1]
        total = np.float32(self.num_users)
        count = np.bincount(index, minlength=grid * grid).astype(np.float32) / total
        served = np.bincount(index[self.radio.serving >= 0], minlength=grid * grid).astype(np.float32) / total
        return count, served

    def _user_features(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The users' block of obs and state and the state's served block (docs/envs.md, option ``user_grid``), from
        the scaled user positions [N, 2]."""
        if self.user_grid:
            return self._user_grid(users)
        return users.reshape(-1), (self.radio.serving >= 0).astype(np.float32)

    def _loads(self) -> np.ndarray:
        """float32 [U, 4] (option ``uav_load``): per UAV, served users and unserved users in range (at most
        max_connections), each over max_connections, and the mean offset (x, y) of its served users from it in units
        of ``load_offset_scale`` (the area size when 0), as 0.5 + 0.5 * clip(offset, -1, 1) (0.5 without users).
        Sums in user order, as the native env."""
        capacity = self.options["max_connections"]
        serving = self.radio.serving
        loads = np.zeros((self.num_uavs, 4), dtype=np.float32)
        offset = np.zeros((self.num_uavs, 2))
        for j in range(self.num_users):
            u = int(serving[j])
            if u >= 0:
                for k in range(2):
                    offset[u, k] += float(self.user_pos[j, k]) - float(self.uav_pos[u, k])
        served = np.bincount(serving[serving >= 0], minlength=self.num_uavs)
        waiting = np.minimum(self.radio.unserved_in_range, capacity)
        for u in range(self.num_uavs):
            loads[u, 0] = np.float32(served[u]) / np.float32(capacity)
            loads[u, 1] = np.float32(waiting[u]) / np.float32(capacity)
            for k in range(2):
                mean = offset[u, k] / served[u] / self.load_offset_scale if served[u] else 0.0
                loads[u, 2 + k] = 0.5 + 0.5 * min(max(mean, -1.0), 1.0)
        return loads

    def observe(self) -> np.ndarray:
        assert self.radio is not None, "observe() before reset()"
        u_count = self.num_uavs
        uav, users = self._scaled_positions()
        users, _ = self._user_features(users)
        loads = self._loads() if self.uav_load else None
        obs = np.zeros((u_count, self.obs_dim), dtype=np.float32)
        for u in range(u_count):
            others = [uav[(u + k) % u_count] for k in range(1, u_count)]
            parts = [uav[u], users, *others, [self._time_feature()]]
            if self.cooperative:
                one_hot = np.zeros(3, dtype=np.float32)
                one_hot[self.radio.role[u]] = 1.0
                hops = np.float32(self.radio.hops[u]) / np.float32(self.max_hops)
                parts += [one_hot, self.radio.gbs_links[u].astype(np.float32), [hops]]
            if self.uav_load:
                parts.append(np.roll(loads, -u, axis=0))  # own load first, then UAV (u + k) mod U
            obs[u] = np.concatenate([np.asarray(p, dtype=np.float32).reshape(-1) for p in parts])
        return obs

    def global_state(self) -> np.ndarray:
        assert self.radio is not None, "global_state() before reset()"
        uav, users = self._scaled_positions()
        users, served = self._user_features(users)
        time = np.array([self._time_feature()], dtype=np.float32)
        loads = self._loads().reshape(-1) if self.uav_load else np.zeros(0, dtype=np.float32)
        return np.concatenate([uav.reshape(-1), users, time, served, loads])

    def action_mask(self) -> np.ndarray:
        return np.ones((self.num_uavs, self.num_actions), dtype=bool)

    def details(self) -> dict[str, Any]:
        """Positions, links, routes and per-step metrics of the radio evaluated last (copies)."""
        if self.radio is None:
            raise RuntimeError("uav_coverage: details() before reset()")
        radio = self.radio
        metrics = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in radio.metrics.items()}
        return {
            "uav_pos": self.uav_pos.copy(),
            "user_pos": self.user_pos.copy(),
            "gbs_pos": self.gbs_pos.copy(),
            "sinr_db": radio.sinr_db.copy(),
            "serving": radio.serving.copy(),
            "hops": radio.hops.copy(),
            "next_hop": radio.next_hop.copy(),
            "role": radio.role.copy(),
            "unserved_in_range": radio.unserved_in_range.copy(),
            "uav_links": radio.uav_links.copy(),
            "gbs_links": radio.gbs_links.copy(),
            "metrics": metrics,
        }
