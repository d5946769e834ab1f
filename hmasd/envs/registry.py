"""The env registry: one plain data entry per native environment, and ``make`` to build a batched env."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hmasd.envs._args import INT32_MAX, as_choice, as_first_env, as_int, as_seed, fresh_seed
from hmasd.envs.vec_env import VecEnv


AUTORESET_MODES = ("same_step", "next_step", "disabled")


@dataclass(frozen=True)
class EnvEntry:
    """How to build one registered env from the native module."""

    name: str
    native_env: str
    native_config: str
    description: str
    # Native class per value of the `action_type` option, for envs compiled once per action type.
    native_by_action_type: tuple[tuple[str, str], ...] = ()

    def native_class_name(self, config: Any) -> str:
        """The native env class for a built config."""
        for action_type, native in self.native_by_action_type:
            if config.action_type == action_type:
                return native
        return self.native_env


_REGISTRY: dict[str, EnvEntry] = {}


def register(name: str, native_env: str, native_config: str, description: str,
             native_by_action_type: tuple[tuple[str, str], ...] = ()) -> None:
    """Adds an env to the registry; names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = EnvEntry(name, native_env, native_config, description, native_by_action_type)


register("alice_and_bob", "AliceAndBobEnv", "AliceAndBobConfig",
         "HMASD's 2-agent button/diamond toy task with a sparse team reward")
register("stag_hunt", "StagHuntEnv", "StagHuntConfig",
         "Symmetric Markov stag hunt for N self-play agents")
register("uav_coverage", "UavCoverageEnv", "UavCoverageConfig",
         "UAV base stations serving ground users with relayed backhaul (continuous or discrete moves)",
         native_by_action_type=(("continuous", "UavCoverageEnv"), ("discrete", "UavCoverageDiscreteEnv")))


def registered_envs() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(_REGISTRY)


def entry(name: str) -> EnvEntry:
    """The registry entry of ``name``, or a ValueError listing the known names."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; registered envs: {', '.join(registered_envs())}")
    return _REGISTRY[name]


@dataclass(frozen=True)
class OptionInfo:
    """One option of a native env, as its C++ option table declares it (csrc/core/options.h).

    ``type`` is ``"int"``, ``"float"`` (float32 in the env), ``"double"``, ``"bool"`` or ``"choice"`` (a str from
    ``choices``). ``min``/``max`` are None where unbounded; ``min`` is exclusive when ``min_exclusive``. The env's
    own validation applies the bounds (and the checks across options) when the env is built.
    """

    name: str
    type: str
    default: Any
    min: float | None
    max: float | None
    min_exclusive: bool
    choices: tuple[str, ...] | None
    doc: str

    def allowed(self) -> str:
        """The allowed values in words, for error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.min is not None and self.max is not None:
            return f"in [{self.min}, {self.max}]"
        if self.min is not None:
            return f"{'>' if self.min_exclusive else '>='} {self.min}"
        if self.max is not None:
            return f"<= {self.max}"
        return "finite" if self.type in ("float", "double") else "any " + self.type


def option_table(name: str) -> dict[str, OptionInfo]:
    """Every option of env ``name`` in the native table's order, read from the native module (never re-typed)."""
    from hmasd import _native

    return {row["name"]: OptionInfo(**row) for row in _native.env_options(entry(name).name)}


def option_names(name: str) -> list[str]:
    """The options ``make(name, **options)`` accepts (the fields of the native config)."""
    return sorted(option_table(name))


def default_options(name: str) -> dict[str, Any]:
    """Every option of ``name`` with its default value."""
    table = option_table(name)
    return {key: table[key].default for key in sorted(table)}


def _checked_value(env: str, option: OptionInfo, value: Any) -> Any:
    """``value`` as the native config takes it, or a TypeError/ValueError naming the env, the option and what is
    allowed. Bounds are left to the native validation, which reports them in the same terms."""
    where = f"option {option.name!r} of env {env!r}"
    is_bool = isinstance(value, (bool, np.bool_))  # never a number here: height=True is a typo
    if option.type == "int":
        if is_bool or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{where} must be an int ({option.allowed()}), got {value!r}")
        return int(value)
    if option.type in ("float", "double"):
        if is_bool or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where} must be a number ({option.allowed()}), got {value!r}")
        return float(value)
    if option.type == "bool":
        if not is_bool:
            raise TypeError(f"{where} must be a bool, got {value!r}")
        return bool(value)
    assert option.choices is not None
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a str ({option.allowed()}), got {value!r}")
    if value not in option.choices:
        # The same words as the native setter: "<env>: <option> must be one of ..."
        raise ValueError(f"{env}: {option.name} must be {option.allowed()}, got {value!r}")
    return value


def build_config(name: str, options: dict[str, Any]) -> Any:
    """A native config for ``name`` with ``options`` applied; unknown or ill-typed options raise."""
    from hmasd import _native

    config = getattr(_native, entry(name).native_config)()
    table = option_table(name)
    for key, value in options.items():
        if key not in table:
            raise TypeError(f"unknown option {key!r} for env {name!r}; valid options: {', '.join(sorted(table))}")
        setattr(config, key, _checked_value(name, table[key], value))
    return config




def make(
    name: str,
    num_envs: int = 1,
    seed: int | None = 0,
    num_threads: int = 1,
    autoreset: str = "same_step",
    device: Any = "cpu",
    first_env: int = 0,
    **options: Any,
) -> VecEnv:
    """Builds ``num_envs`` copies of env ``name`` stepped together in native code.

    Args:
        name: a registered env (see :func:`registered_envs`).
        num_envs: number of env copies E (>= 1).
        seed: seed of the batch; env ``e`` draws from the stream keyed by ``(seed, first_env + e)``, so its
            trajectory does not depend on ``num_envs`` or ``num_threads``. ``None`` draws a fresh seed from the OS
            (Gymnasium's rule for an unseeded env; ``env.seed`` tells which, to reproduce the run).
        first_env: the env index of this batch's first copy, an int in [0, 2**32 - num_envs] (default 0). Batches
            made with the same seed at ``first_env = 0, E, 2E, ...`` step exactly like consecutive slices of one
            larger batch: each distributed rank builds its own slice of one global batch.
        num_threads: CPU threads stepping the batch: 0 means one per CPU this process may use (its affinity
            mask, which a container's cpuset narrows); at most that many, or 8 on smaller machines.
        autoreset: ``"same_step"`` (finished envs restart inside ``step``; the last observation is in
            ``final_obs``), ``"next_step"`` (the step that ends an episode returns its last observation; the next
            ``step`` restarts that env and ignores its actions, with rewards 0: Gymnasium 1.x's default) or
            ``"disabled"`` (call ``reset()``, or ``reset_envs()`` for the finished ones, after an episode ends).
        device: ``"cpu"`` (a :class:`VecEnv` of NumPy views) or ``"cuda"`` / ``"cuda:N"`` (a
            :class:`~hmasd.envs.device.DeviceVecEnv` of torch tensors in device memory; needs a CUDA build and a
            visible device, else a clear error). The same seed gives the same trajectories on either.
        **options: env options (docs/envs.md, :func:`option_table`); unknown names and wrong types raise TypeError,
            unknown choices and values out of bounds ValueError.
    """
    from hmasd import _native
    from hmasd.envs.device import parse_device

    spec = entry(name)
    kind, index = parse_device(device)
    if kind == "cuda":
        from hmasd.envs.device import check_cuda_available

        check_cuda_available(index)
    num_envs = as_int(num_envs, "num_envs", 1, INT32_MAX)
    first_env = as_first_env(first_env, num_envs)
    seed = fresh_seed() if seed is None else as_seed(seed)
    max_threads = _native.max_threads()
    num_threads = as_int(num_threads, "num_threads", 0, max_threads,
                         f" (0 = one per usable CPU; this process may use {_native.usable_cpus()})")
    threads = num_threads or _native.usable_cpus()
    autoreset = as_choice(autoreset, "autoreset", AUTORESET_MODES)
    config = build_config(name, options)
    if kind == "cuda":
        return _make_device(name, config, num_envs, seed, index, autoreset, options, first_env)
    native_class = getattr(_native, spec.native_class_name(config))
    try:
        native = native_class(config, num_envs, seed, threads, autoreset, first_env)
    except ValueError as error:  # the native validation names the option; say which env it came from
        raise ValueError(f"make({name!r}): {error}") from None
    return VecEnv(name, native, dict(options))


def _make_device(name: str, config: Any, num_envs: int, seed: int, index: int, autoreset: str,
                 options: dict[str, Any], first_env: int) -> VecEnv:
    from hmasd import _native
    from hmasd.envs.device import DeviceVecEnv

    try:
        native = _native.make_device_env(config, num_envs, seed, index, autoreset, first_env)
    except ValueError as error:
        raise ValueError(f"make({name!r}, device='cuda:{index}'): {error}") from None
    spec = make(name, num_envs=1, seed=seed, autoreset=autoreset, **options)
    env = DeviceVecEnv(name, native, dict(options), spec)
    env._autoreset = autoreset
    return env
