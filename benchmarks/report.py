"""Runs the benchmarks (env throughput, rollout-engine overhead, uav_coverage throughput) and writes their tables into
benchmarks/README.md.

Usage: ``python benchmarks/report.py`` (run the suite, then write), ``--from-json FILE`` (write from an earlier
``--benchmark-json`` file without running), ``--no-write`` (print the tables only); pytest arguments after ``--``
(test files or directories among them, relative to the repository root, run instead of the whole of benchmarks/).
Each README block (``results``, ``uav-results``) is rewritten only when the run has benchmarks for it, so a partial
run such as ``-- -k uav`` leaves the other block as it was. ``--repeat K`` runs the suite K times and reports, for
every benchmark, the median over the runs of its median call and of each ratio it stores (overheads, speedups),
with the ratios' range over the runs: on a shared VM one run's ratio can move by a factor of two.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
README = BENCH_DIR / "README.md"
DEFAULT_JSON = REPO_ROOT / ".benchmarks" / "env_throughput.json"
# README block name -> the benchmark kinds it reports.
BLOCKS = {"results": ("throughput", "round_trip", "engine_overhead", "engine_store_floor"),
          "uav-results": ("uav_throughput",),
          "adapter-results": ("adapter_overhead", "sb3_rollout", "sb3_vec_env_step", "sb3_adapter_overhead",
                              "torchrl_rollout", "torchrl_overhead")}

# The targets.
TARGET_RATE = 5e6  # agent-steps/s at E = 4096 on one thread, each env
TARGET_SPEEDUP = 100.0  # times the reference at E = 4096 on one thread
TARGET_ROUND_TRIP_US = 5.0  # one Python step() at E = 1
TARGET_ENGINE_OVERHEAD = 0.15  # engine time / bare env time - 1 at E = 4096, each env (every clock)
# uav_coverage: env steps/s on one core (1 thread) at U = 5, N = 50, E = 1024, and times the reference per env step.
UAV_TARGET_SIZE = (5, 50)
UAV_TARGET_NUM_ENVS = 1024
UAV_TARGET_RATE = 100_000.0
UAV_TARGET_SPEEDUP = 20.0
UAV_OLD_SYSTEM_RATE = 23.0  # env steps/s of the old system, the baseline
# Adapters for other trainers: overhead over the bare native step at E = 1024 (no policy), and speedups over the
# paths users had before (SuperSuit for SB3, PettingZooWrapper + SerialEnv for TorchRL).
ADAPTER_TARGET_OVERHEAD = 0.25
ADAPTER_TARGET_SPEEDUP = {"sb3_rollout": 5.0, "torchrl_rollout": 50.0}


@dataclass(frozen=True)
class Result:
    """One benchmark: its labels and per-call times in seconds."""

    kind: str
    backend: str
    env: str
    num_envs: int
    num_threads: int | None
    agent_steps: int
    median: float
    best: float
    mean: float
    rounds: int
    clock: str | None = None  # rollout-engine clock (engine_overhead benchmarks only)
    num_agents: int | None = None
    num_users: int | None = None  # uav_throughput benchmarks only
    env_steps: int | None = None  # per call (uav_throughput benchmarks only)
    batch_bytes: int | None = None  # engine_store_floor benchmarks only

    @property
    def batch_mb(self) -> float:
        return (self.batch_bytes or 0) / 1e6

    @property
    def rate(self) -> float:
        """Agent-steps per second from the median call."""
        return self.agent_steps / self.median

    @property
    def best_rate(self) -> float:
        return self.agent_steps / self.best

    @property
    def env_rate(self) -> float:
        """Env steps per second from the median call."""
        return (self.env_steps or 0) / self.median

    @property
    def best_env_rate(self) -> float:
        return (self.env_steps or 0) / self.best


# pytest's own entry point, started without the working directory on sys.path: `python -m pytest` (and `-c`) would put
# the repository root first there, and its source tree hmasd/ (no compiled _native) would shadow the installed package.
PYTEST = ("import sys; sys.path[:1] == [''] and sys.path.pop(0); import pytest; sys.exit(pytest.console_main())")
# pytest options whose value is a path (a value that names a benchmark file is not a test path given to run).
PATH_VALUED_OPTIONS = ("--deselect", "--ignore", "--ignore-glob", "--rootdir", "--confcutdir", "--basetemp", "-c")


def names_test_paths(args: list[str]) -> bool:
    """Whether the extra pytest arguments name test files or directories (relative to the repository root, where the
    suite runs): then only those run, else the whole of benchmarks/."""
    for previous, arg in zip(["", *args], args):
        if arg.startswith("-") or previous in PATH_VALUED_OPTIONS:
            continue
        if (REPO_ROOT / arg.split("::")[0]).exists():
            return True
    return False


def run_suite(json_path: Path, extra_args: list[str]) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    paths = [] if names_test_paths(extra_args) else [str(BENCH_DIR)]
    command = [sys.executable, "-c", PYTEST, *paths, "--benchmark-only", f"--benchmark-json={json_path.resolve()}",
               "-p", "no:cacheprovider", "-q", *extra_args]
    print("$", shlex.join(command), flush=True)
    completed = subprocess.run(command, cwd=REPO_ROOT, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"benchmark run failed with exit code {completed.returncode}")


def load_results(data: dict[str, Any]) -> list[Result]:
    results = []
    for bench in data["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        results.append(Result(kind=info["kind"], backend=info["backend"], env=info["env"],
                              num_envs=int(info.get("num_envs", info.get("E"))),
                              num_threads=info.get("num_threads"), agent_steps=int(info["agent_steps"]),
                              median=float(stats["median"]), best=float(stats["min"]), mean=float(stats["mean"]),
                              rounds=int(stats["rounds"]), clock=info.get("clock"),
                              num_agents=optional_int(info.get("num_agents")),
                              num_users=optional_int(info.get("num_users")),
                              env_steps=optional_int(info.get("env_steps")),
                              batch_bytes=optional_int(info.get("batch_bytes"))))
    return results


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def fmt_pct(fraction: float) -> str:
    return f"{fraction * 100:+.0f} %"


def bookkeeping(engine: Result, bare: Result, store: Result) -> float:
    """The engine's own work: its batch time less the bare env's and the stores', as a share of the bare env's."""
    return (engine.median - bare.median - store.median) / bare.median


def engine_pairs(results: list[Result]) -> dict[tuple[str, str], tuple[Result, Result]]:
    """(env, clock) -> (engine, bare) for the engine-overhead benchmarks that have both halves."""
    engine = {(r.env, r.clock): r for r in results if r.kind == "engine_overhead" and r.backend == "engine"}
    bare = {(r.env, r.clock): r for r in results if r.kind == "engine_overhead" and r.backend == "bare"}
    return {key: (engine[key], bare[key]) for key in sorted(engine.keys() & bare.keys(), key=str)}


def run_header(data: dict[str, Any]) -> list[str]:
    """When, at which commit and on what machine the run happened (each README block carries its own)."""
    machine, commit = data.get("machine_info", {}), data.get("commit_info", {})
    dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
    build = machine.get("hmasd_build", {})
    load = machine.get("load_average_at_start") or []
    runs = data.get("runs", 1)
    at = f"at commit `{str(commit.get('id', '?'))[:12]}`{dirty}"
    when = (f"Run of {data.get('datetime', '?')} (UTC) {at}." if runs == 1 else
            f"{runs} runs, the first of {data['run_datetimes'][0]} (UTC), {at}: each figure is the median over the "
            "runs, with a ratio's range over them in brackets (the load below is the first run's).")
    return [
        when,
        "",
        f"- CPU: {machine.get('cpu_model', '?')}, {machine.get('usable_cores', '?')} usable cores "
        f"({machine.get('logical_cpus', '?')} logical CPUs); load average at start "
        f"{' / '.join(str(x) for x in load) or '?'} (1 / 5 / 15 min)",
        f"- Python {machine.get('python_version', '?')} ({machine.get('python_implementation', '?')}), "
        f"NumPy {machine.get('numpy_version', '?')}, pytest-benchmark {data.get('version', '?')}, "
        f"hmasd native build: compiler {build.get('compiler', '?')}, OpenMP {build.get('openmp', '?')}",
    ]


def render(data: dict[str, Any]) -> str:
    """The markdown written between the README's ``results`` markers (env throughput, round trip, engine)."""
    results = load_results(data)
    native = {(r.env, r.num_envs, r.num_threads): r for r in results
              if r.kind == "throughput" and r.backend == "native"}
    reference = {(r.env, r.num_envs): r for r in results if r.kind == "throughput" and r.backend == "reference"}
    round_trip = {(r.env, r.num_threads): r for r in results if r.kind == "round_trip"}
    pairs = engine_pairs(results)
    stores = {r.env: r for r in results if r.kind == "engine_store_floor"}

    lines = [
        *run_header(data),
        "",
        "### Throughput, agent-steps/s (E x N x steps / time per call; median call, and best call)",
        "",
        "| env | E | threads | native | native (best) | reference, same E | speedup |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (env, num_envs, threads), r in sorted(native.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        ref = reference.get((env, num_envs))
        ref_cell = fmt_rate(ref.rate) if ref else "n/a"
        speedup = f"{r.rate / ref.rate:,.0f}x" if ref else "n/a"
        lines.append(f"| {env} | {num_envs} | {threads} | {fmt_rate(r.rate)} | {fmt_rate(r.best_rate)} | "
                     f"{ref_cell} | {speedup} |")
    lines += [
        "",
        "### Round trip: one Python `env.step(a)` at E = 1",
        "",
        "| env | threads | median (us) | best (us) | mean (us) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for (env, threads), r in sorted(round_trip.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        lines.append(f"| {env} | {threads} | {r.median * 1e6:.2f} | {r.best * 1e6:.2f} | {r.mean * 1e6:.2f} |")

    engine_checks: list[tuple[str, bool]] = []
    if pairs:
        first_engine = next(iter(pairs.values()))[0]
        lines += [
            "",
            f"### Engine overhead: one batch through the rollout engine vs the same steps on the bare env "
            f"(E = {first_engine.num_envs}, {first_engine.num_threads} thread)",
            "",
            "| env | clock | engine, agent-steps/s | bare env, agent-steps/s | overhead (median) | overhead (best) "
            "| the batch's stores alone | bookkeeping beyond bare + stores |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for (env, clock), (eng, bare) in pairs.items():
            store = stores.get(env)
            store_cell = f"{fmt_pct(store.median / bare.median)} ({store.batch_mb:.0f} MB)" if store else "n/a"
            own_cell = fmt_pct(bookkeeping(eng, bare, store)) if store else "n/a"
            lines.append(f"| {env} | {clock} | {fmt_rate(eng.rate)} | {fmt_rate(bare.rate)} | "
                         f"{fmt_pct(eng.median / bare.median - 1)} | {fmt_pct(eng.best / bare.best - 1)} | "
                         f"{store_cell} | {own_cell} |")
        if stores:
            lines += ["", "The last column times only the writes of one batch's per-step records (the same bytes, one "
                      "NumPy fill per array and step, in the same run), as a share of the bare env's batch time: what "
                      "this machine's memory bandwidth costs before the engine does any work of its own. The last: "
                      "the engine's own bookkeeping, engine time minus (bare env time plus the stores), as a share "
                      "of the bare env's time; the target is judged on it."]
        for env in sorted({env for env, _ in pairs}):
            store = stores.get(env)
            per_clock = [(clock, bookkeeping(eng, bare, store) if store else eng.median / bare.median - 1)
                         for (e, clock), (eng, bare) in pairs.items() if e == env]
            worst = max(overhead for _, overhead in per_clock)
            detail = ", ".join(f"{clock} {fmt_pct(overhead)}" for clock, overhead in per_clock)
            what = "bookkeeping beyond bare + stores" if store else "engine overhead"
            engine_checks.append((f"{env}: {what} at E={first_engine.num_envs} {detail} "
                                  f"(target <= {fmt_pct(TARGET_ENGINE_OVERHEAD)} on every clock)",
                                  worst <= TARGET_ENGINE_OVERHEAD))
        lines += ["", "Target, engine bookkeeping <= 15 % of the bare env (median times, every clock): "
                  + "; ".join(f"{text.split(':')[0]} {verdict(ok)}" for text, ok in engine_checks)]

    checks: list[tuple[str, bool]] = []
    for env in sorted({key[0] for key in native}):
        r = native.get((env, 4096, 1))
        ref = reference.get((env, 4096))
        if r is not None:
            checks.append((f"{env}: E=4096, 1 thread, {fmt_rate(r.rate)} agent-steps/s "
                           f"(target >= {fmt_rate(TARGET_RATE)})", r.rate >= TARGET_RATE))
        if r is not None and ref is not None:
            ratio = r.rate / ref.rate
            checks.append((f"{env}: E=4096, 1 thread, {ratio:,.0f}x the reference (target >= {TARGET_SPEEDUP:.0f}x)",
                           ratio >= TARGET_SPEEDUP))
        rt = round_trip.get((env, 1))
        if rt is not None:
            checks.append((f"{env}: E=1 round trip {rt.median * 1e6:.2f} us (target < {TARGET_ROUND_TRIP_US:.0f} us)",
                           rt.median * 1e6 < TARGET_ROUND_TRIP_US))
    checks += engine_checks
    met = sum(ok for _, ok in checks)
    lines += ["", f"### Targets (judged on medians): {met} of {len(checks)} met", ""]
    lines += [f"- {text}: {verdict(ok)}" for text, ok in checks]
    return "\n".join(lines)


def verdict_uav(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def uav_reference_for(reference: dict[tuple[int, int, int], Result], size: tuple[int, int],
                      num_envs: int) -> Result | None:
    """The reference at the largest measured E not above ``num_envs`` for this (U, N): the reference steps env by env,
    so its env steps/s hardly depend on E, and E = 1024 is not measured (seconds per step)."""
    measured = [e for (u, n, e) in reference if (u, n) == size and e <= num_envs]
    return reference[(*size, max(measured))] if measured else None


def uav_checks(native: dict[tuple[int, int, int, int], Result],
               reference: dict[tuple[int, int, int], Result]) -> list[tuple[str, bool]]:
    """The issue's targets at E = 1024 on one thread: the per-core rate at U = 5, N = 50, and the speedup over the
    reference (per env step) at every measured size."""
    checks: list[tuple[str, bool]] = []
    target = native.get((*UAV_TARGET_SIZE, UAV_TARGET_NUM_ENVS, 1))
    if target is not None:
        checks.append((f"U={UAV_TARGET_SIZE[0]}, N={UAV_TARGET_SIZE[1]}, E={UAV_TARGET_NUM_ENVS}, 1 thread: "
                       f"{target.env_rate:,.0f} env steps/s per core (target >= {UAV_TARGET_RATE:,.0f})",
                       target.env_rate >= UAV_TARGET_RATE))
    for size in sorted({(u, n) for (u, n, _, _) in native}):
        r = native.get((*size, UAV_TARGET_NUM_ENVS, 1))
        ref = uav_reference_for(reference, size, UAV_TARGET_NUM_ENVS)
        if r is not None and ref is not None:
            ratio = r.env_rate / ref.env_rate
            checks.append((f"U={size[0]}, N={size[1]}, E={UAV_TARGET_NUM_ENVS}, 1 thread: {ratio:,.0f}x the reference "
                           f"at E={ref.num_envs}, per env step (target >= {UAV_TARGET_SPEEDUP:.0f}x)",
                           ratio >= UAV_TARGET_SPEEDUP))
    return checks


def render_uav(data: dict[str, Any]) -> str:
    """The markdown written between the README's ``uav-results`` markers."""
    results = [r for r in load_results(data) if r.kind == "uav_throughput"]
    native = {(r.num_agents or 0, r.num_users or 0, r.num_envs, r.num_threads or 1): r
              for r in results if r.backend == "native"}
    reference = {(r.num_agents or 0, r.num_users or 0, r.num_envs): r for r in results if r.backend == "reference"}

    lines = [
        *run_header(data),
        "",
        "### uav_coverage throughput, env steps/s (E x steps / time per call; median call, and best call)",
        "",
        "| U | N | E | threads | native | native (best) | native per core | reference (its E) | speedup |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (u, n, num_envs, threads), r in sorted(native.items()):
        ref = uav_reference_for(reference, (u, n), num_envs)
        ref_cell = f"{fmt_rate(ref.env_rate)} (E={ref.num_envs})" if ref else "n/a"
        speedup = f"{r.env_rate / ref.env_rate:,.0f}x" if ref else "n/a"
        lines.append(f"| {u} | {n} | {num_envs} | {threads} | {fmt_rate(r.env_rate)} | {fmt_rate(r.best_env_rate)} | "
                     f"{fmt_rate(r.env_rate / threads)} | {ref_cell} | {speedup} |")

    checks = uav_checks(native, reference)
    if checks:
        met = sum(ok for _, ok in checks)
        lines += ["", f"### uav_coverage targets (judged on medians): {met} of {len(checks)} met", ""]
        lines += [f"- {text}: {verdict_uav(ok)}" for text, ok in checks]
        target = native.get((*UAV_TARGET_SIZE, UAV_TARGET_NUM_ENVS, 1))
        if target is not None:
            lines.append(f"- U={UAV_TARGET_SIZE[0]}, N={UAV_TARGET_SIZE[1]}, E={UAV_TARGET_NUM_ENVS}, 1 thread: "
                         f"{target.env_rate / UAV_OLD_SYSTEM_RATE:,.0f}x the old system's "
                         f"{UAV_OLD_SYSTEM_RATE:.0f} env steps/s (the rate target is "
                         f"{UAV_TARGET_RATE / UAV_OLD_SYSTEM_RATE:,.0f}x)")
    return "\n".join(lines)


def adapter_overheads(benches: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[dict[str, Any], float]]:
    """(labels, overhead over the bare step) of every adapter benchmark that has one: the ratios the SB3 and TorchRL
    suites store themselves, and those of test_adapter_overhead.py's pairs (see :func:`store_pair_overheads`)."""
    out = [(info, float(info.get("overhead_vs_bare", info.get("overhead")))) for info, _ in benches
           if "overhead_vs_bare" in info or "overhead" in info]
    return sorted(out, key=lambda x: (x[0]["backend"], x[0]["env"]))


def render_adapters(data: dict[str, Any]) -> str:
    """The markdown of the ``adapter-results`` block: each adapter's overhead over the bare native step, and its
    speedup over the path users had before, each ratio measured within this run."""
    data = json.loads(json.dumps(data))  # a copy, given the pairs' ratios (a merged run has them already)
    store_pair_overheads(data)
    benches = [(b["extra_info"], b["stats"]) for b in data["benchmarks"]
               if b["extra_info"].get("kind") in BLOCKS["adapter-results"]]
    lines = [*run_header(data), "",
             "### Adapter overhead over the bare native step (no policy in the loop; median calls)", "",
             "| adapter (benchmark) | env | E | overhead | target |", "| --- | --- | ---: | ---: | --- |"]
    for info, extra in adapter_overheads(benches):
        key = "overhead_vs_bare" if "overhead_vs_bare" in info else "overhead"
        lines.append(f"| {info['backend']} ({info['kind']}) | {info['env']} | {info['num_envs']} | {fmt_pct(extra)}"
                     f"{spread(info, key, fmt_pct)} | "
                     f"<= {fmt_pct(ADAPTER_TARGET_OVERHEAD)}: {verdict(extra <= ADAPTER_TARGET_OVERHEAD)} |")
    lines += ["", "### Speedup over the path users had before (same envs, same actions or policy)", "",
              "| benchmark | env | E | hmasd env-steps/s | speedup | over | target |",
              "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for info, stats in sorted(benches, key=lambda x: (x[0]["kind"], x[0].get("variant", ""), x[0]["num_envs"])):
        ratios = {k[len("speedup_vs_"):]: v for k, v in info.items()
                  if k.startswith("speedup_vs_") and not k.endswith(("_best", "_runs"))}
        if info.get("backend") == "pettingzoo" or not ratios:
            continue
        for baseline, ratio in ratios.items():
            target = ADAPTER_TARGET_SPEEDUP.get(info["kind"])
            goal = f">= {target:.0f}x: {verdict(ratio >= target)}" if target else "(no target)"
            kind = f"{info['kind']} ({info['variant']})" if info.get("variant") else info["kind"]
            lines.append(f"| {kind} | {info['env']} | {info['num_envs']} | "
                         f"{fmt_rate(info['env_steps'] / stats['median'])} | {ratio:,.1f}x"
                         f"{spread(info, 'speedup_vs_' + baseline, lambda r: f'{r:,.1f}x')} | {baseline} | {goal} |")
    return "\n".join(lines)


RATIO_PREFIXES = ("speedup_vs_", "overhead")
"""The ``extra_info`` fields that are ratios measured within a run (what the tables report and judge)."""


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One benchmark JSON from several runs of the same benchmarks: the first run's, with each benchmark's median
    call the median over the runs (best call: the best of all), each ratio field of its ``extra_info`` the median
    over the runs, and the runs' values of it under ``<field>_runs``. A benchmark missing from a run is refused:
    the runs must be of one suite."""
    runs = [json.loads(json.dumps(run)) for run in runs]  # copies: the callers' runs stay as they were
    for run in runs:  # test_adapter_overhead.py's pairs store no ratio: each run's, divided here
        store_pair_overheads(run)
    merged = runs[0]  # already a copy; each of its values is read before it is replaced below
    by_name = [{bench["fullname"]: bench for bench in run["benchmarks"]} for run in runs]
    for bench in merged["benchmarks"]:
        name = bench["fullname"]
        missing = [i + 1 for i, run in enumerate(by_name) if name not in run]
        if missing:
            raise SystemExit(f"benchmark {name} is missing from run(s) {missing}: the runs are not of one suite")
        same = [run[name] for run in by_name]
        bench["stats"]["median"] = statistics.median(b["stats"]["median"] for b in same)
        bench["stats"]["min"] = min(b["stats"]["min"] for b in same)
        info = bench["extra_info"]
        for key in [k for k, v in info.items() if k.startswith(RATIO_PREFIXES) and isinstance(v, (int, float))
                    and not isinstance(v, bool)]:
            values = [float(b["extra_info"][key]) for b in same if key in b["extra_info"]]
            info[key], info[f"{key}_runs"] = statistics.median(values), values
    merged["runs"] = len(runs)
    merged["run_datetimes"] = [run.get("datetime", "?") for run in runs]
    return merged


def store_pair_overheads(run: dict[str, Any]) -> None:
    """Writes ``overhead_vs_bare`` into the ``extra_info`` of each adapter_overhead benchmark that has none (a merged
    run's is the median over its runs) from its run's bare partner (in place), as the SB3 and TorchRL suites store
    theirs."""
    benches = [b for b in run["benchmarks"] if b["extra_info"].get("kind") == "adapter_overhead"]
    bare = {(b["extra_info"]["env"], b["extra_info"]["num_envs"]): b["stats"]["median"] for b in benches
            if b["extra_info"]["backend"] == "bare"}
    for bench in benches:
        info = bench["extra_info"]
        if info["backend"] != "bare" and "overhead_vs_bare" not in info and (info["env"], info["num_envs"]) in bare:
            info["overhead_vs_bare"] = bench["stats"]["median"] / bare[info["env"], info["num_envs"]] - 1


def spread(info: dict[str, Any], key: str, fmt: Any) -> str:
    """`` [lowest, highest]`` of a merged ratio over its runs, empty for one run's."""
    values = info.get(f"{key}_runs")
    if not values or len(values) < 2:
        return ""
    return f" [{fmt(min(values))}, {fmt(max(values))}]"


RENDERERS = {"results": render, "uav-results": render_uav, "adapter-results": render_adapters}
HEADINGS = {"results": "Results", "uav-results": "uav_coverage results",
            "adapter-results": "Adapters for other trainers"}


def render_blocks(data: dict[str, Any]) -> dict[str, str]:
    """README block name -> markdown, for the blocks that this run has benchmarks for."""
    kinds = {bench["extra_info"].get("kind") for bench in data["benchmarks"]}
    return {name: RENDERERS[name](data) for name, block_kinds in BLOCKS.items() if kinds & set(block_kinds)}


def write_readme(readme: Path, name: str, block: str) -> None:
    """Replaces the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (appended under a heading if
    the markers are absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    section = f"{start}\n{block}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"## {HEADINGS[name]}\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", type=Path, help="write from this benchmark JSON instead of running the suite")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where the run saves its JSON ({DEFAULT_JSON})")
    parser.add_argument("--readme", type=Path, default=README, help="markdown file with the results markers")
    parser.add_argument("--no-write", action="store_true", help="print the table without touching the README")
    parser.add_argument("--repeat", type=int, default=1, metavar="K",
                        help="run the suite K times and report the medians over the runs, with the ratios' range")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.repeat > 1 and args.from_json is not None:
        parser.error("--repeat runs the suite; --from-json renders an earlier run (a merged one too)")
    json_path: Path = args.from_json or args.json
    if args.from_json is None:
        run_paths = [json_path] if args.repeat == 1 else [
            json_path.with_suffix(f".run{k + 1}.json") for k in range(args.repeat)]
        for path in run_paths:
            run_suite(path, args.pytest_args)
        if args.repeat > 1:
            runs = [json.loads(path.read_text(encoding="utf-8")) for path in run_paths]
            json_path.write_text(json.dumps(merge_runs(runs), indent=1), encoding="utf-8")
    blocks = render_blocks(json.loads(json_path.read_text(encoding="utf-8")))
    if not blocks:
        raise SystemExit(f"{json_path} has no benchmarks that this report renders")
    print("\n\n".join(blocks.values()))
    if not args.no_write:
        for name, block in blocks.items():
            write_readme(args.readme, name, block)
        print(f"\nwrote {', '.join(blocks)} into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
