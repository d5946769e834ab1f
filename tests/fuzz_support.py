"""Support for the fuzz-style property tests (tests/test_fuzz.py): input variants, the twin harness, and the counts.

Every fuzzed call goes to a *victim* object, and a *twin* built and stepped identically either gets nothing (when the
victim rejected the call) or the call's canonical form (when the victim accepted it). Each call must end in one of two
outcomes, and anything else fails the test:

- ``rejected_clean``: the call raised TypeError, ValueError, OverflowError, RuntimeError, IndexError or KeyError (or a
  MemoryError) whose message names the argument at fault (or, for a call made at the wrong time, the call or the call
  it needs first). pybind11's generic "incompatible function arguments" text lists the whole signature and so names
  every argument and none: it does not count. Afterwards the victim's whole observable state equals the twin's (every
  env buffer, the episode log, ``env._native.snapshot()``, uav ``details()``; the engine's counters, flags and every
  low-level, window and high-level buffer), and a following valid step on both still agrees.
- ``accepted_equal``: the call returned, the twin accepted the canonical form, and both states (and a following valid
  step) are equal.

The contract (what an RL engineer calling these entry points can expect), decided per case:

1. Arrays. An argument's *declared* dtypes (actions: int32/int64, or float32/float64 for continuous envs; env_ids and
   skills: int32/int64; log-probs and values: float32; positions: float32/float64) are accepted in any memory form:
   non-native byte order ('>' here), any strides (slices of bigger arrays, transposes, Fortran order, negative strides,
   zero strides from broadcasting), unaligned buffers (``np.frombuffer(..., offset=1)``) and read-only arrays. Each
   acts exactly like the same values in a native C-contiguous array of the canonical dtype (int32, float32; float64
   for positions). float64 given for a float32 argument is rounded to float32 (that is the canonical form).
2. Other dtypes: a numeric dtype whose conversion keeps every value (int8/int16/uint* holding valid small indices,
   float16 or float64 for a float32 argument, small ints for a float argument) may be accepted (then it must act like
   the converted values) or rejected; so may object arrays holding the same numbers. Conversions that do not keep the
   meaning are rejected, never truncated: floats (even integral ones) for an int argument, bool anywhere a number is
   expected, complex and str arrays (no parsing of '1.5').
3. Values: an int outside its range (an action outside [0, num_actions), an env id that is not an env or not one
   that needs a decision, a skill outside [0, n)) is rejected, including int64 values that would wrap to a valid int32;
   NaN and +-inf are rejected; float64 values beyond float32 (which would become inf) are rejected. Finite extremes
   are accepted where the API defines them (continuous actions outside [-1, 1] are clipped by the env; any finite
   log-prob/value); positions outside the area (x, y) or the height range (z) are rejected: no env is ever there.
4. Shapes: exactly the documented shape; extra or missing dimensions and off-by-one sizes are rejected. Python
   sequences that form a proper array may be accepted (then they act like ``np.asarray`` of them) or rejected;
   ragged lists, None, scalars, strings and dicts are rejected, naming the argument.
5. Scalars (options, seeds, indices, counters, engine sizes): ints are Python ints or NumPy integer scalars (the
   same value: ``seed=rng.integers(2**31)`` must work like ``seed=int(...)``); bool, floats (even 2.0), None and str are
   rejected where an int is expected. Float options take Python/NumPy ints and floats; non-finite values, values that
   do not fit the option's storage (float32 for ``type == "float"``) and values outside the option table's bounds are
   rejected. Bool options take bool or ``np.bool_``, never numbers. Choice options take one of their strings. An env
   that ``make`` accepts produces finite observations and state after reset and steps (rewards are not held to this:
   an extreme reward scale chosen by the user may overflow by design).
   Sizes that no machine can hold (num_envs = 2**31 - 1, a horizon whose ring passes 2**30 slots) are rejected with a
   message naming the argument, not with the allocator's bare ``std::bad_alloc``.
6. Call order: a call made at the wrong time (stepping a batch that needs a decision, resuming before the barrier,
   restoring counters mid-batch, stepping/resetting/restoring an env while its engine's batch is open, a second engine
   on one env, deciding after the barrier) is rejected and changes nothing; a call made at a valid time is accepted.
   After ``disable_collection()`` is accepted, steps pass straight to the env (refusing the call would also do).
7. Snapshots: every snapshot an env of the same options produced, at any time (before its first reset too), restores
   exactly; bytes-like objects (bytearray, memoryview) may be taken as their bytes; damaged, truncated and foreign
   snapshots and other types are rejected, naming the snapshot (or ``blob``).

How the inputs are made: arrays by hypothesis strategies over groups of variants of a canonical valid array (layout,
byteorder, dtype, shape, pyobj, value; :func:`array_case`); scalar special values (edges, int32/int64 limits, 2**64,
1e300, NaN, tiny floats, every NumPy scalar type, bool, None, str, ...) enumerated whole (:func:`int_case_list`,
:func:`float_case_list`, ...) and random in-range values drawn; call sequences drawn op by op. An unaligned array that
the bindings read in place still reads correctly on x86, so those cases pass here; only UBSan sees the misaligned load.

The counts: each fuzzed call records ``(entry_point, env, outcome)`` in :data:`LOG`; tests/conftest.py prints the table
per entry point at the end of the session and writes it as JSON to ``$HMASD_FUZZ_COUNTS`` when that is set. With
``HMASD_FUZZ_KEEP_GOING=1`` a contract violation is recorded (and listed, with a few distinct examples, in the summary
and the JSON) instead of failing the test at once, so one run lists every failing case; the run still fails.
``HMASD_FUZZ_EXAMPLES`` (default 12) scales every hypothesis test's examples; ``HMASD_FUZZ_SHRINK=1`` turns shrinking
back on (off by default: with many findings open it costs minutes).
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

import hmasd.envs
from hmasd.envs import random_actions  # the package's random policy: valid actions of any space
from hmasd.rollout import RolloutEngine

# ---- hypothesis settings -----------------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("HMASD_FUZZ_EXAMPLES", "12"))
# Shrinking a failure takes minutes over the suite; the first failing example is reported as found unless
# HMASD_FUZZ_SHRINK=1 (for working on one finding).
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) + (
    (Phase.shrink,) if os.environ.get("HMASD_FUZZ_SHRINK") == "1" else ())


def fuzz_settings(scale: float = 1.0) -> settings:
    """Reproducible settings (derandomized, no example database, no deadline); ``scale`` weights a test's share of
    ``$HMASD_FUZZ_EXAMPLES`` (default 12)."""
    return settings(max_examples=max(1, int(EXAMPLES * scale)), deadline=None, derandomize=True, database=None,
                    phases=PHASES, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ---- outcomes and the counts ---------------------------------------------------------------------------------------

REJECTED, ACCEPTED = "rejected_clean", "accepted_equal"
ACCEPT, REJECT, EITHER = "accept", "reject", "either"
CLEAN_ERRORS = (TypeError, ValueError, OverflowError, RuntimeError, IndexError, KeyError, MemoryError)
GENERIC_PYBIND = ("incompatible function arguments", "incompatible constructor arguments")
KEEP_GOING = os.environ.get("HMASD_FUZZ_KEEP_GOING") == "1"


@dataclass
class FuzzLog:
    """Outcomes of every fuzzed call, and the contract violations seen (a few distinct examples per finding)."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_env: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    violations: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)

    def record(self, entry: str, env: str, outcome: str) -> None:
        self.counts[entry][outcome] += 1
        self.counts[entry]["calls"] += 1
        self.by_env[(entry, env)][outcome] += 1
        self.by_env[(entry, env)]["calls"] += 1

    def violation(self, entry: str, env: str, kind: str, problem: str, detail: str) -> None:
        self.counts[entry]["violations"] += 1
        self.counts[entry]["calls"] += 1
        self.by_env[(entry, env)]["violations"] += 1
        self.by_env[(entry, env)]["calls"] += 1
        key = (entry, env, kind, problem)
        seen = self.violations.setdefault(key, {"entry": entry, "env": env, "kind": kind, "problem": problem,
                                                "example": detail, "examples": [], "times": 0})
        seen["times"] += 1
        if detail not in seen["examples"] and len(seen["examples"]) < 12:
            seen["examples"].append(detail)

    def table(self) -> list[dict[str, Any]]:
        return [{"entry_point": entry, "calls": c["calls"], "rejected_clean": c[REJECTED],
                 "accepted_equal": c[ACCEPTED], "violations": c["violations"]}
                for entry, c in sorted(self.counts.items())]

    def as_json(self) -> dict[str, Any]:
        return {
            "entry_points": self.table(),
            "per_env": [{"entry_point": e, "env": n, **{k: c[k] for k in ("calls", REJECTED, ACCEPTED, "violations")}}
                        for (e, n), c in sorted(self.by_env.items())],
            "violations": sorted(self.violations.values(), key=lambda v: (v["entry"], v["env"], v["kind"])),
        }


LOG = FuzzLog()


class ContractViolation(AssertionError):
    """A fuzzed call that was neither a clean rejection nor an accepted call equal to the twin."""


class Stop(Exception):
    """Ends an example after a recorded violation in keep-going mode (the twins no longer agree)."""


def violate(entry: str, env: str, kind: str, problem: str, detail: str) -> None:
    __tracebackhide__ = True  # the message says it all; the harness frames would only bury it
    LOG.violation(entry, env, kind, problem, detail)
    message = f"{entry} [{env}] {kind}: {problem}: {detail}"
    if KEEP_GOING:
        raise Stop(message)
    raise ContractViolation(message) from None


# ---- the observable state of an env or an env + engine ---------------------------------------------------------------

ENV_BUFFERS = ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "final_obs", "final_state",
               "episode_return", "episode_length")


def _key(value: Any) -> Any:
    """A comparable form of one observable: arrays by dtype, shape and exact bytes."""
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return tuple((k, _key(v)) for k, v in sorted(value.items()))
    if isinstance(value, float):
        return repr(value)
    return value


def env_state(env: Any, drain: bool = True) -> dict[str, Any]:
    """Every observable of a VecEnv. Takes a snapshot and (``drain``) drains the episode log: do it to both twins."""
    out: dict[str, Any] = {name: _key(getattr(env, name)) for name in ENV_BUFFERS}
    out.update({f"episode_info.{k}": _key(v) for k, v in env.episode_info.items()})
    out["has_reset"] = env._native.has_reset
    out["snapshot"] = env._native.snapshot()
    if drain:
        out["episode_log"] = _key(env._native.drain_episode_log())
    if hasattr(env._native, "details") and env._native.has_reset:
        for e in range(env.num_envs):
            out[f"details[{e}]"] = _key(env._native.details(e))
    return out


def engine_state(engine: RolloutEngine) -> dict[str, Any]:
    """Every observable of a RolloutEngine (its whole buffers, not only the rows in use) and of its env."""
    out = {f"env.{k}": v for k, v in env_state(engine.env).items()}
    g = engine._native
    for group, buffers in (("low", engine._low), ("high", engine._high), ("windows", engine.windows)):
        out.update({f"{group}.{k}": _key(v) for k, v in buffers.items()})
    out["counters"] = _key(engine.counters())
    out["flags"] = (g.ready, g.collecting, g.steps_in_batch, g.policy_version)
    for name in ("obs", "state", "action_mask"):
        out[f"engine.{name}"] = _key(getattr(engine, name))
    out["high_level()"] = _key(engine.high_level())
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>"))


# ---- worlds: an env, or an env and its engine, built deterministically ---------------------------------------------


def env_flavours() -> list[tuple[str, dict[str, Any]]]:
    """Every registered env, once per value of its ``action_type`` option where it has one (from the registry)."""
    out = []
    for name in hmasd.envs.registered_envs():
        option = hmasd.envs.option_table(name).get("action_type")
        if option is None:
            out.append((name, {}))
        else:
            out.extend((name, {} if c == option.default else {"action_type": c}) for c in option.choices)
    return out


def flavour_id(flavour: tuple[str, dict[str, Any]]) -> str:
    name, options = flavour
    return name + "".join(f"[{v}]" for v in options.values())


NUM_ENVS = 3


def make_env(flavour: tuple[str, dict[str, Any]], warmup: int = 3, seed: int = 5, **extra: Any) -> Any:
    name, options = flavour
    env = hmasd.envs.make(name, num_envs=NUM_ENVS, seed=seed, **options, **extra)
    env.reset()
    rng = np.random.default_rng(warmup)
    for _ in range(warmup):
        env.step(random_actions(env, rng))
    return env


ENGINE_ARGS = {"horizon": 6, "skill_interval": 2, "num_team_skills": 3, "num_indiv_skills": 2}


def decision_args(engine: RolloutEngine, seed: int) -> dict[str, np.ndarray]:
    """A canonical, valid decision for exactly the envs that need one now."""
    rng = np.random.default_rng(seed)
    ids = engine.decision_env_ids()
    d, n = len(ids), engine.env.num_agents
    return {
        "env_ids": ids.astype(np.int32),
        "team_skill": rng.integers(0, engine._native.num_team_skills, d).astype(np.int32),
        "indiv_skill": rng.integers(0, engine._native.num_indiv_skills, (d, n)).astype(np.int32),
        "logp": rng.normal(-1.0, 0.5, (d, n + 1)).astype(np.float32),
        "values": rng.normal(0.0, 2.0, (d, n + 1)).astype(np.float32),
    }


def step_args(engine: RolloutEngine, seed: int) -> dict[str, np.ndarray]:
    """Canonical, valid arguments of engine.step for the current observation."""
    rng = np.random.default_rng(seed)
    env = engine.env
    shape = (env.num_envs, env.num_agents)
    return {"actions": random_actions(env, rng, engine.action_mask),
            "logp": rng.normal(-1.0, 0.5, shape).astype(np.float32),
            "values": rng.normal(0.0, 2.0, shape).astype(np.float32)}


def make_engine_world(flavour: tuple[str, dict[str, Any]], steps: int, decided: bool) -> RolloutEngine:
    """An engine ``steps`` steps into a batch (each step decided where needed), plus the decision at ``steps``
    when ``decided``."""
    env = make_env(flavour)
    engine = RolloutEngine(env, **ENGINE_ARGS)
    for t in range(steps):
        engine.decide(**decision_args(engine, 100 + t))
        engine.step(**step_args(engine, 200 + t))
    if decided:
        engine.decide(**decision_args(engine, 100 + steps))
    return engine


def same_outcome(victim: Any, twin: Any, call: Callable[[Any], None], state: Callable[[Any], Any]) -> list[str]:
    """``call`` on both objects; it must succeed on both or raise the same clean error, and leave equal states."""
    outcome = []
    for obj in (victim, twin):
        try:
            call(obj)
            outcome.append("ok")
        except CLEAN_ERRORS as error:
            outcome.append(f"{type(error).__name__}: {error}")
    diffs = differences(state(victim), state(twin))
    if outcome[0] != outcome[1]:
        diffs.append(f"following step: victim {outcome[0]!r}, twin {outcome[1]!r}")
    return diffs


def advance_env(victim: Any, twin: Any, seed: int) -> list[str]:
    """One valid step on both envs (after a reset where one is needed); outcomes and states must agree."""
    for env in (victim, twin):
        needs_reset = env.autoreset == "disabled" and bool((env.terminated | env.truncated).any())
        if not env._native.has_reset or needs_reset:
            env.reset(seed=seed)
    actions = random_actions(twin, np.random.default_rng(seed))
    return same_outcome(victim, twin, lambda env: env.step(actions), env_state)


def advance_engine(victim: RolloutEngine, twin: RolloutEngine, seed: int) -> list[str]:
    """One valid protocol step on both engines (resume at the barrier, decide where needed); outcomes and states
    must agree. An error is raised by both alike or it is a difference."""
    def protocol_step(engine: RolloutEngine) -> None:
        g = engine._native
        if not engine.env._native.has_reset:
            engine.env.reset(seed=seed)
        if g.ready:
            engine.resume()
        if g.collecting and engine.needs_decision.any():
            engine.decide(**decision_args(engine, seed))
        engine.step(**step_args(engine, seed + 1))

    return same_outcome(victim, twin, protocol_step, engine_state)


# ---- describing inputs (for reports) -------------------------------------------------------------------------------


def describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        flags = []
        if not value.dtype.isnative:
            flags.append("non-native order")
        if not value.flags.c_contiguous:
            flags.append(f"strides {value.strides}")
        if not value.flags.aligned:
            flags.append("unaligned")
        if not value.flags.writeable:
            flags.append("read-only")
        text = np.array2string(value.ravel()[:6], threshold=6, max_line_width=200) if value.dtype != object else "obj"
        return f"array(dtype={value.dtype.str}, shape={value.shape}{', ' if flags else ''}{', '.join(flags)}) {text}"
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


# ---- the check of one fuzzed call ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One input: what the victim gets, what it must do, and the canonical form the twin gets if it is accepted."""

    kind: str
    value: Any
    expect: str
    canonical: Any = None
    bad_index: tuple[int, ...] | None = None  # the element of an array made invalid, where one was

    def __repr__(self) -> str:
        return f"Case({self.kind}, {describe(self.value)}, expect={self.expect})"


def check_message(error: BaseException, names: tuple[str, ...]) -> str | None:
    """Why the error is not a clean rejection naming one of ``names``, or None when it is."""
    text = str(error)
    if not isinstance(error, CLEAN_ERRORS):
        return f"raised {type(error).__name__} (not a clean exception): {text[:200]}"
    if any(generic in text for generic in GENERIC_PYBIND):
        return f"generic pybind11 error that names no argument: {type(error).__name__}: {text[:160]}"
    if not any(name in text for name in names):
        return f"message names none of {names}: {type(error).__name__}: {text[:200]}"
    if isinstance(error, MemoryError) and "bad_alloc" in text:
        return f"MemoryError from the allocator: {text[:200]}"
    return None


def _index_mismatch(error: BaseException, names: tuple[str, ...], case: Case) -> str | None:
    """Where the message reports an index of the bad element, it must be the element that was made bad."""
    if case.bad_index is None:
        return None
    for name in names:
        match = re.search(re.escape(name) + r"\[(\d+(?:, *\d+)*)\]", str(error))
        if match:
            got = tuple(int(x) for x in match.group(1).split(","))
            if got != case.bad_index[:len(got)]:
                return f"message reports {name}{list(got)}, the bad element is {list(case.bad_index)}: {error}"
    return None


def check_call(entry: str, env: str, case: Case, victim: Any, twin: Any, call: Callable[[Any, Any], Any],
               names: tuple[str, ...], state: Callable[[Any], dict[str, Any]],
               advance: Callable[[Any, Any, int], list[str]], after_accept: Callable[[Any], str | None] | None = None,
               canonical_call: Callable[[Any, Any], Any] | None = None, check_before: bool = True,
               context: str = "") -> str:
    """Applies ``call(victim, case.value)``; checks and records the outcome against the twin (see the module doc).

    ``canonical_call`` (default ``call``) applies the canonical form to the twin; ``after_accept`` may return a
    problem with an accepted call that equality with the twin cannot show (e.g. non-finite observations).
    ``check_before=False`` skips the check that the twins agree before the call (a sequence checked them after the
    previous call); ``context`` (e.g. the calls before it) is added to a violation's description."""
    __tracebackhide__ = True
    if check_before:
        before = differences(state(victim), state(twin))
        assert not before, f"the twins differ before the call (test bug): {before}"
    text = describe(case.value) + (f" [{context}]" if context else "")
    try:
        call(victim, case.value)
    except BaseException as error:  # noqa: B036 - every escape is judged below
        if isinstance(error, (KeyboardInterrupt, SystemExit, ContractViolation, Stop)):
            raise
        if case.expect == ACCEPT:
            violate(entry, env, case.kind, "valid input rejected",
                    f"{text}: {type(error).__name__}: {str(error)[:240]}")
        problem = check_message(error, names) or _index_mismatch(error, names, case)
        if problem:
            violate(entry, env, case.kind, "unclean rejection", f"{text}: {problem}")
        diffs = differences(state(victim), state(twin))
        if diffs:
            violate(entry, env, case.kind, "rejected call changed state", f"{text}: {diffs}")
        diffs = advance(victim, twin, 7)
        if diffs:
            violate(entry, env, case.kind, "state differs after a following valid step", f"{text}: {diffs}")
        LOG.record(entry, env, REJECTED)
        return REJECTED
    if case.expect == REJECT:
        violate(entry, env, case.kind, "invalid input accepted", text)
    try:
        (canonical_call or call)(twin, case.canonical)
    except CLEAN_ERRORS as error:
        violate(entry, env, case.kind, "accepted, but its canonical form is rejected",
                f"{text} -> canonical {describe(case.canonical)}: {type(error).__name__}: {error}")
    diffs = differences(state(victim), state(twin))
    if diffs:
        violate(entry, env, case.kind, "accepted but differs from the twin given the canonical form",
                f"{text}: differing {diffs[:8]}")
    if after_accept is not None:
        problem = after_accept(victim)
        if problem:
            violate(entry, env, case.kind, "accepted, but the result is unsound", f"{text}: {problem}")
    diffs = advance(victim, twin, 7)
    if diffs:
        violate(entry, env, case.kind, "state differs after a following valid step", f"{text}: {diffs}")
    LOG.record(entry, env, ACCEPTED)
    return ACCEPTED


def run_cases(cases: list[Any], check: Callable[[Any], Any]) -> None:
    """Runs ``check`` on every case of an enumerated list; fails afterwards, listing every violation."""
    __tracebackhide__ = True
    failures = []
    for case in cases:
        try:
            check(case)
        except Stop:
            pass
        except ContractViolation as error:
            failures.append(str(error))
    if failures:
        raise ContractViolation(f"{len(failures)} of {len(cases)} cases broke the contract:\n" + "\n".join(failures))


def run_example(body: Callable[[], Any]) -> None:
    """Runs one hypothesis example; in keep-going mode a recorded violation only ends the example."""
    __tracebackhide__ = True
    try:
        body()
    except Stop:
        pass


# ---- array variants ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """One array argument: its name, declared dtypes, canonical dtype and valid values.

    Ints are valid in [low, high); floats are valid when finite (and, for ``float64``-canonical arguments stored as
    float32, within float32's range). ``extremes`` are finite values the API accepts though they look wrong
    (continuous actions outside [-1, 1], huge log-probs, far positions)."""

    name: str
    kind: str  # "int" or "float"
    declared: tuple[str, ...]
    canonical: str
    low: int = 0
    high: int = 0
    extremes: tuple[float, ...] = ()
    rejected_extremes: tuple[float, ...] = ()  # finite values outside the argument's physical range
    storage: str = "float32"  # what a float argument is stored as: values beyond it are rejected
    allow_broadcast: bool = True  # whether repeating the first row keeps the values valid


INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float16", "float32", "float64")
OTHER_DTYPES = ("bool", "complex64", "complex128", "object", "<U8")
LAYOUTS = ("c", "fortran", "transpose", "slice", "negative", "broadcast", "readonly", "unaligned",
           "unaligned_strided")


def _flip_all(ndim: int) -> tuple[slice, ...]:
    return tuple(slice(None, None, -1) for _ in range(ndim))


def relayout(values: np.ndarray, dtype: np.dtype, layout: str) -> np.ndarray:
    """``values`` cast to ``dtype`` (any byte order) in the memory layout ``layout``."""
    a = np.array(values, dtype=dtype)  # keeps 0-d arrays 0-d
    if a.ndim == 0 and layout not in ("readonly", "unaligned", "unaligned_strided"):
        return a
    if layout == "c" or a.size == 0:
        return a
    if layout == "fortran":
        return np.array(a, order="F")
    if layout == "transpose":
        return np.ascontiguousarray(a.T).T if a.ndim >= 2 else a[::-1].copy()[::-1]
    if layout == "slice":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype)
        view = big[tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)]
        view[...] = a
        return view
    if layout == "negative":
        return a[_flip_all(a.ndim)].copy()[_flip_all(a.ndim)]
    if layout == "broadcast":
        return np.broadcast_to(a[:1], a.shape) if a.ndim >= 1 else a
    if layout == "readonly":
        out = a.copy()
        out.flags.writeable = False
        return out
    if layout in ("unaligned", "unaligned_strided"):
        stride = 2 if layout == "unaligned_strided" else 1
        buf = np.zeros(a.nbytes * stride + dtype.itemsize + 1, np.uint8)
        flat = np.frombuffer(buf, dtype, a.size * stride, offset=1)
        view = flat[::stride].reshape(a.shape)
        view[...] = a
        return view
    raise AssertionError(layout)


def canonical_of(spec: ArraySpec, value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value).astype(spec.canonical))


@st.composite
def layout_case(draw: Any, spec: ArraySpec, base: np.ndarray, swapped: bool) -> Case:
    """A declared dtype in any memory form (group "layout"), or in non-native byte order (group "byteorder")."""
    dtype = np.dtype(draw(st.sampled_from(spec.declared)))
    if swapped:
        dtype = dtype.newbyteorder(">" if dtype.isnative and np.little_endian else "<")
    layouts = [x for x in LAYOUTS if x != "broadcast" or (spec.allow_broadcast and base.ndim >= 2)]
    layout = draw(st.sampled_from(layouts))
    value = relayout(base, dtype, layout)
    kind = f"{'byteorder' if swapped else 'layout'}:{dtype.str}:{layout}"
    return Case(kind, value, ACCEPT, canonical_of(spec, value))


@st.composite
def dtype_case(draw: Any, spec: ArraySpec, base: np.ndarray) -> Case:
    """A dtype outside the declared ones: value-preserving numeric ones may go either way, the rest are refused."""
    others = [d for d in INT_DTYPES + FLOAT_DTYPES + OTHER_DTYPES if d not in spec.declared]
    name = draw(st.sampled_from(others))
    dtype = np.dtype(name)
    if name == "object":
        value = base.astype(object)
    elif name == "<U8":
        value = base.astype(str)
    elif spec.kind == "float" and dtype.kind in "iu":
        value = np.round(base).astype(np.int64).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    else:
        with np.errstate(all="ignore"):
            value = base.astype(dtype)
    if draw(st.booleans()) and dtype.itemsize > 1 and dtype.kind in "iufc":
        value = value.astype(dtype.newbyteorder(">"))
    kind = f"dtype:{name}"
    if dtype.kind in "bcU":  # bool, complex, str: a different meaning, never converted
        return Case(kind, value, REJECT)
    if spec.kind == "int":  # floats are not indices, even integral ones
        keeps = dtype.kind in "iuO" and np.array_equal(value.astype(np.int64), base.astype(np.int64))
    else:
        keeps = np.all(np.isfinite(value.astype(np.float64)))
    if keeps:
        return Case(kind, value, EITHER, canonical_of(spec, value))
    return Case(kind, value, REJECT)


def wrong_shapes(base: np.ndarray) -> list[tuple[str, np.ndarray]]:
    out = [("extra_dim", base[..., None]), ("extra_leading_dim", base[None])]
    if base.ndim >= 1:
        if len(base):
            out.append(("missing_dim", np.asarray(base[0])))
        for axis in range(base.ndim):
            for delta in (-1, 1):
                shape = base.shape[:axis] + (base.shape[axis] + delta,) + base.shape[axis + 1:]
                if min(shape) < 0:
                    continue
                if base.size:
                    out.append((f"axis{axis}{delta:+d}", np.resize(base, shape).astype(base.dtype)))
                else:
                    out.append((f"axis{axis}{delta:+d}", np.zeros(shape, base.dtype)))
    if base.ndim >= 2 and base.shape[0] != base.shape[1]:
        out.append(("transposed_shape", np.ascontiguousarray(np.swapaxes(base, 0, 1))))
    out.append(("flattened", base.ravel()) if base.ndim >= 2 else ("scalar_array", np.asarray(base.ravel()[:1]
                                                                                               .sum())))
    return out


@st.composite
def shape_case(draw: Any, spec: ArraySpec, base: np.ndarray) -> Case:
    label, value = draw(st.sampled_from(wrong_shapes(base)))
    dtype = np.dtype(draw(st.sampled_from(spec.declared)))
    return Case(f"shape:{label}", relayout(value, dtype, draw(st.sampled_from(("c", "fortran", "negative")))), REJECT)


def _ragged(base: np.ndarray) -> Any:
    """Nested lists like ``base.tolist()`` whose last row has one element too many (not an array)."""
    rows = base.tolist()
    if base.ndim == 0 or not rows:
        return [[0], [0, 0]]
    if base.ndim == 1:
        return [rows[0], [rows[0], rows[0]]] + rows[1:]
    original = rows[0]
    rows[-1] = rows[-1] + rows[-1][:1]
    return rows if len(rows) > 1 else rows + [original]


@st.composite
def pyobj_case(draw: Any, spec: ArraySpec, base: np.ndarray) -> Case:
    """Python sequences and other objects in place of the array."""
    choice = draw(st.sampled_from(("list", "tuple", "ragged", "none", "int_scalar", "float_scalar", "str",
                                   "dict")))
    if choice == "list":
        value: Any = base.tolist()
        return Case("pyobj:list", value, EITHER, canonical_of(spec, np.asarray(value)))
    if choice == "tuple":
        value = tuple(map(tuple, base.tolist())) if base.ndim >= 2 else tuple(base.tolist())
        arr = np.asarray(value)
        ok = arr.shape == base.shape and (spec.kind == "float" or arr.dtype.kind in "iu")
        return Case("pyobj:tuple", value, EITHER if ok else REJECT, canonical_of(spec, arr) if ok else None)
    value = {"ragged": _ragged(base), "none": None, "int_scalar": 1, "float_scalar": 0.5, "str": "left",
             "dict": {"actions": base}}[choice]
    return Case(f"pyobj:{choice}", value, REJECT)


@st.composite
def value_case(draw: Any, spec: ArraySpec, base: np.ndarray, extra_bad: tuple[tuple[str, Any], ...] = ()) -> Case:
    """One element made invalid (or made an accepted extreme), in a declared dtype and any layout."""
    if base.size == 0:
        label, value = draw(st.sampled_from(wrong_shapes(base)))
        return Case(f"shape:{label}", value, REJECT)
    dtype = np.dtype(draw(st.sampled_from(spec.declared)))
    if spec.kind == "int":
        info = np.iinfo(dtype)
        candidates = [("below_range", spec.low - 1), ("at_high", spec.high), ("int32_max", 2**31 - 1),
                      ("int32_min", -2**31)]
        if dtype.itemsize == 8:
            candidates += [("wraps_to_valid_int32", 2**32 + spec.low), ("int64_max", info.max),
                           ("int64_min", info.min)]
        candidates = [(k, v, REJECT) for k, v in candidates if info.min <= v <= info.max]
        candidates += [(k, v, REJECT) for k, v in extra_bad]
    else:
        candidates = [("nan", np.nan, REJECT), ("inf", np.inf, REJECT), ("-inf", -np.inf, REJECT)]
        if dtype.itemsize == 8:
            candidates.append(("beyond_float32", 1e39, REJECT))
            candidates.append(("1e300", -1e300, REJECT))
        candidates += [(f"extreme:{x:g}", x, ACCEPT) for x in spec.extremes]
        candidates += [(f"outside:{x:g}", x, REJECT) for x in spec.rejected_extremes]
    label, bad, expect = draw(st.sampled_from(candidates))
    flat = draw(st.integers(0, base.size - 1))
    index = tuple(int(i) for i in np.unravel_index(flat, base.shape))
    values = base.astype(np.float64 if spec.kind == "float" else object).copy()
    values[index] = bad
    if spec.kind == "int":
        values = values.astype(dtype)
    else:
        with np.errstate(all="ignore"):
            values = values.astype(dtype)
    layout = draw(st.sampled_from([x for x in LAYOUTS if x != "broadcast"]))
    byteorder = draw(st.booleans())
    if byteorder and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    value = relayout(values, dtype, layout)
    canonical = canonical_of(spec, value) if expect == ACCEPT else None
    return Case(f"value:{label}", value, expect, canonical, bad_index=index)


ARRAY_GROUPS = ("layout", "byteorder", "dtype", "shape", "pyobj", "value")


def array_case(group: str, spec: ArraySpec, base: np.ndarray,
               extra_bad: tuple[tuple[str, Any], ...] = ()) -> st.SearchStrategy[Case]:
    """The hypothesis strategy of one group of variants of ``base``, the canonical value of argument ``spec``."""
    if group == "layout":
        return layout_case(spec, base, swapped=False)
    if group == "byteorder":
        return layout_case(spec, base, swapped=True)
    if group == "dtype":
        return dtype_case(spec, base)
    if group == "shape":
        return shape_case(spec, base)
    if group == "pyobj":
        return pyobj_case(spec, base)
    if group == "value":
        return value_case(spec, base, extra_bad)
    raise AssertionError(group)


def action_spec(env: Any) -> ArraySpec:
    if env.continuous:
        return ArraySpec("actions", "float", ("float32", "float64"), "float32", extremes=(3.0, -1e30, 2e38))
    return ArraySpec("actions", "int", ("int32", "int64"), "int32", 0, env.num_actions)


FLOAT32_ARG = {"kind": "float", "declared": ("float32",), "canonical": "float32", "extremes": (1e30, -3e38, 0.0)}


# ---- scalar variants ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntRule:
    """An int argument valid in [low, high] (None: unbounded). Values from ``reject_from`` up are too big for any
    machine (they size allocations or threads) and must be rejected, naming the argument; values between
    ``safe_max`` and ``reject_from`` are never drawn (they might really be allocated)."""

    low: int | None
    high: int | None
    small: tuple[int, int] = (0, 8)
    big: tuple[int, ...] = ()
    safe_max: int | None = None
    reject_from: int | None = None


def _int_valid(rule: IntRule, v: int) -> bool:
    if rule.reject_from is not None and v >= rule.reject_from:
        return False
    return (rule.low is None or v >= rule.low) and (rule.high is None or v <= rule.high)


def _from_int(rule: IntRule, v: int, numpy_types: tuple[type, ...] = (np.int64, np.int32, np.uint64, np.int16)
              ) -> list[Case]:
    """``v`` as a Python int and as each NumPy integer type that holds it: all valid, or all invalid, alike."""
    ok = _int_valid(rule, v)
    out = [Case("int", v, ACCEPT if ok else REJECT, v if ok else None)]
    for np_type in numpy_types:
        info = np.iinfo(np_type)
        if info.min <= v <= info.max:
            out.append(Case(f"numpy:{np_type.__name__}", np_type(v), ACCEPT if ok else REJECT, v if ok else None))
    return out


def int_case_list(rule: IntRule, default: int | None = None) -> list[Case]:
    """The special ints of ``rule`` (its edges, int32/int64 limits, huge ones), a valid and an invalid value in every
    NumPy integer type, and what is wrongly passed for ints; the whole list is meant to be run, not sampled."""
    edges = [e for e in (rule.low, rule.high) if e is not None]
    specials = sorted(v for v in {*edges, *(e - 1 for e in edges), *(e + 1 for e in edges), *rule.big, -1, 0,
                                  2**31 - 1, 2**31, -2**31 - 1, 2**63, 2**64, -2**63 - 1, 2**100}
                      if rule.safe_max is None or v <= rule.safe_max
                      or (rule.reject_from is not None and v >= rule.reject_from))
    good = default if default is not None else (rule.low if rule.low is not None else 0)
    out = [Case("int", v, ACCEPT if _int_valid(rule, v) else REJECT, v if _int_valid(rule, v) else None)
           for v in specials]
    out += _from_int(rule, good)[1:] + [c for c in _from_int(rule, good - 1 if rule.low is not None else -1)[1:]
                                        if c.expect == REJECT]
    out += [Case("bool", True, REJECT), Case("bool", False, REJECT), Case("numpy:bool_", np.bool_(True), REJECT),
            Case("float", float(good), REJECT), Case("float", good + 0.5, REJECT),
            Case("float:nan", float("nan"), REJECT),
            Case("float:1e300", 1e300, REJECT), Case("numpy:float64", np.float64(good), REJECT),
            Case("numpy:float32", np.float32(good), REJECT), Case("None", None, REJECT), Case("str", str(good), REJECT),
            Case("complex", complex(good), REJECT), Case("list", [good], REJECT),
            Case("array0d", np.array(good), EITHER, good)]
    return out


def int_cases(rule: IntRule, default: int | None = None) -> st.SearchStrategy[Case]:
    """Random ints of the rule's small range in any of their types, or one of :func:`int_case_list`."""
    lo, hi = rule.small
    return st.one_of(st.integers(lo, hi).flatmap(lambda v: st.sampled_from(_from_int(rule, v))),
                     st.sampled_from(int_case_list(rule, default)))


@dataclass(frozen=True)
class FloatRule:
    """A float argument valid when finite, inside [low, high] (``low`` exclusive when ``min_exclusive``) and within
    what ``storage`` ("float32" or "float64") holds."""

    low: float | None
    high: float | None
    min_exclusive: bool = False
    storage: str = "float64"

    def valid(self, v: float) -> bool:
        if not np.isfinite(v) or abs(v) > float(np.finfo(self.storage).max):
            return False
        if self.low is not None and (v <= self.low if self.min_exclusive else v < self.low):
            return False
        return self.high is None or v <= self.high


def _from_float(rule: FloatRule, v: float) -> list[Case]:
    ok = rule.valid(v)
    out = [Case("float", v, ACCEPT if ok else REJECT, v if ok else None),
           Case("numpy:float64", np.float64(v), ACCEPT if ok else REJECT, v if ok else None)]
    if np.isfinite(v) and abs(v) < float(np.finfo(np.float32).max):
        f32 = float(np.float32(v))
        out.append(Case("numpy:float32", np.float32(v), ACCEPT if rule.valid(f32) else REJECT, f32))
    if float(v).is_integer() and abs(v) < 2**53:
        as_float = float(int(v))  # the int's own value: -0.0 given as an int is 0, and 0.0 is its canonical form
        out.append(Case("int", int(v), ACCEPT if ok else REJECT, as_float if ok else None))
        out.append(Case("numpy:int64", np.int64(int(v)), ACCEPT if ok else REJECT, as_float if ok else None))
    return out


def float_case_list(rule: FloatRule, default: float) -> list[Case]:
    """The special numbers for a float argument (edges, float32 limits, tiny, huge, non-finite), the default in every
    numeric type, and what is wrongly passed for numbers; meant to be run whole."""
    edges = [e for e in (rule.low, rule.high) if e is not None]
    # sorted and NaN last: a set with NaN in it has no stable order (NaN hashes by identity), nor does sorting it
    specials = sorted({*edges, *(e - 1 for e in edges), *(e + 1 for e in edges), *(e + 1e-6 for e in edges), 0.0,
                       1e-300, 1e-45, 3.4e38, 3.5e38, 1e39, 1e300, -1e300, float("inf"), float("-inf"), 2.0**64})
    specials += [-0.0, float("nan")]
    out = [Case("float", v, ACCEPT if rule.valid(v) else REJECT, v if rule.valid(v) else None) for v in specials]
    out += [c for c in _from_float(rule, float(default)) if c.kind != "float"]
    out += [Case("bool", True, REJECT), Case("numpy:bool_", np.bool_(False), REJECT), Case("None", None, REJECT),
            Case("str", repr(float(default)), REJECT), Case("complex", complex(default), REJECT),
            Case("list", [default], REJECT)]
    return out


def float_cases(rule: FloatRule, default: float) -> st.SearchStrategy[Case]:
    lo = -1e3 if rule.low is None else rule.low
    hi = (lo + 1e3) if rule.high is None else rule.high
    return st.one_of(st.floats(lo, hi, allow_nan=False).flatmap(lambda v: st.sampled_from(_from_float(rule, v))),
                     st.sampled_from(float_case_list(rule, default)))


def bool_case_list() -> list[Case]:
    return [Case("bool", True, ACCEPT, True), Case("bool", False, ACCEPT, False),
            Case("numpy:bool_", np.bool_(True), ACCEPT, True), Case("numpy:bool_", np.bool_(False), ACCEPT, False),
            Case("int", 1, REJECT), Case("int", 0, REJECT), Case("float", 1.0, REJECT), Case("None", None, REJECT),
            Case("str", "True", REJECT)]


def choice_case_list(choices: tuple[str, ...]) -> list[Case]:
    out = [Case("str", c, ACCEPT, c) for c in choices] + [Case("numpy:str_", np.str_(c), ACCEPT, c) for c in choices]
    out += [Case("str", c.upper(), REJECT) for c in choices if c.upper() != c]
    out += [Case("str", "", REJECT), Case("str", choices[0] + " ", REJECT), Case("None", None, REJECT),
            Case("int", 0, REJECT), Case("list", [choices[0]], REJECT),
            Case("bytes", choices[0].encode(), EITHER, choices[0])]  # b'episode' read as 'episode' is harmless
    return out


def choice_cases(choices: tuple[str, ...]) -> st.SearchStrategy[Case]:
    return st.sampled_from(choice_case_list(choices))


def option_rule(option: Any) -> IntRule | FloatRule | None:
    if option.type == "int":
        high = min(option.max, 2**31 - 1) if option.max is not None else 2**31 - 1
        low = option.min if option.min is not None else -4
        return IntRule(option.min, high, small=(low, min(high, low + 64)))
    if option.type in ("float", "double"):
        return FloatRule(option.min, option.max, option.min_exclusive,
                         "float32" if option.type == "float" else "float64")
    return None


def option_case_list(option: Any) -> list[Case]:
    """Every special value for one option of an env's option table (registry.OptionInfo)."""
    rule = option_rule(option)
    if isinstance(rule, IntRule):
        return int_case_list(rule, option.default)
    if isinstance(rule, FloatRule):
        return float_case_list(rule, option.default)
    return bool_case_list() if option.type == "bool" else choice_case_list(option.choices)


def option_cases(option: Any) -> st.SearchStrategy[Case]:
    """Values for one option: random valid ones, or one of :func:`option_case_list`."""
    rule = option_rule(option)
    if isinstance(rule, IntRule):
        return int_cases(rule, option.default)
    if isinstance(rule, FloatRule):
        return float_cases(rule, option.default)
    return st.sampled_from(option_case_list(option))


# ---- constructions (make, RolloutEngine): no object before the call, so the twin is built from the canonical form ----


def combined_expectation(cases: dict[str, Case]) -> str:
    if any(c.expect == REJECT for c in cases.values()):
        return REJECT
    return ACCEPT if all(c.expect == ACCEPT for c in cases.values()) else EITHER


def check_construction(entry: str, env: str, cases: dict[str, Case], build: Callable[[str, dict[str, Any]], Any],
                       names: tuple[str, ...], state: Callable[[Any], dict[str, Any]],
                       advance: Callable[[Any, Any, int], list[str]],
                       sound: Callable[[Any], str | None] | None = None,
                       after_reject: Callable[[], list[str]] | None = None) -> str:
    """``build("victim", values)`` with the fuzzed values, ``build("twin", canonical)`` with their canonical forms.

    Rejected: a clean error naming one of ``names``, the canonical form also rejected unless something had to be
    rejected, and ``after_reject()`` (e.g. the env a rejected engine was given is unchanged and usable) clean.
    Accepted: the canonical form accepted too, equal states, equal after a following valid step, and ``sound``."""
    __tracebackhide__ = True
    expect = combined_expectation(cases)
    kind = ",".join(f"{k}:{c.kind}" for k, c in sorted(cases.items()))
    text = ", ".join(f"{k}={describe(c.value)}" for k, c in sorted(cases.items()))
    canonical = {k: c.canonical for k, c in cases.items()}
    try:
        victim = build("victim", {k: c.value for k, c in cases.items()})
    except BaseException as error:  # noqa: B036 - every escape is judged below
        if isinstance(error, (KeyboardInterrupt, SystemExit, ContractViolation, Stop)):
            raise
        if expect != REJECT:
            try:
                build("twin", canonical)
            except CLEAN_ERRORS:
                pass
            else:
                if expect == ACCEPT:
                    violate(entry, env, kind, "valid input rejected",
                            f"{text}: {type(error).__name__}: {str(error)[:240]}")
        problem = check_message(error, names)
        if problem:
            violate(entry, env, kind, "unclean rejection", f"{text}: {problem}")
        diffs = after_reject() if after_reject else []
        if diffs:
            violate(entry, env, kind, "rejected call changed state", f"{text}: {diffs}")
        LOG.record(entry, env, REJECTED)
        return REJECTED
    if expect == REJECT:
        violate(entry, env, kind, "invalid input accepted", text)
    try:
        twin = build("twin", canonical)
    except CLEAN_ERRORS as error:
        violate(entry, env, kind, "accepted, but its canonical form is rejected",
                f"{text}: {type(error).__name__}: {error}")
    diffs = differences(state(victim), state(twin))
    if diffs:
        violate(entry, env, kind, "accepted but differs from the twin given the canonical form",
                f"{text}: differing {diffs[:8]}")
    diffs = advance(victim, twin, 11)
    if diffs:
        violate(entry, env, kind, "state differs after a following valid step", f"{text}: {diffs[:8]}")
    problem = sound(victim) if sound else None
    if problem:
        violate(entry, env, kind, "accepted, but the result is unsound", f"{text}: {problem}")
    LOG.record(entry, env, ACCEPTED)
    return ACCEPTED


def finite_outputs(env: Any, steps: int = 0) -> str | None:
    """Why an env's observations or state are not all finite (now, or after ``steps`` random steps), or None."""
    rng = np.random.default_rng(0)
    for _ in range(steps):
        if env.autoreset == "disabled" and bool((env.terminated | env.truncated).any()):
            env.reset()
        env.step(random_actions(env, rng))
    for name in ("obs", "state"):
        values = getattr(env, name)
        if not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            return f"{name}{bad.tolist()} = {values[tuple(bad)]} after reset and steps"
    return None
