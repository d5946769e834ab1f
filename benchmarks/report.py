"""Runs the benchmarks (env throughput, rollout-engine overhead) and writes their tables into benchmarks/README.md.

Usage: ``python benchmarks/report.py`` (run the suite, then write), ``--from-json FILE`` (write from an earlier
``--benchmark-json`` file without running), ``--no-write`` (print the table only).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
README = BENCH_DIR / "README.md"
DEFAULT_JSON = REPO_ROOT / ".benchmarks" / "env_throughput.json"
START, END = "<!-- results:start -->", "<!-- results:end -->"

# The targets.
TARGET_RATE = 5e6  # agent-steps/s at E = 4096 on one thread, each env
TARGET_SPEEDUP = 100.0  # times the reference at E = 4096 on one thread
TARGET_ROUND_TRIP_US = 5.0  # one Python step() at E = 1
TARGET_ENGINE_OVERHEAD = 0.15  # engine time / bare env time - 1 at E = 4096, each env (every clock)


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

    @property
    def rate(self) -> float:
        """Agent-steps per second from the median call."""
        return self.agent_steps / self.median

    @property
    def best_rate(self) -> float:
        return self.agent_steps / self.best


def run_suite(json_path: Path, extra_args: list[str]) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", str(BENCH_DIR), "--benchmark-only", f"--benchmark-json={json_path}",
               "-p", "no:cacheprovider", "-q", *extra_args]
    print("$", " ".join(command), flush=True)
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
                              rounds=int(stats["rounds"]), clock=info.get("clock")))
    return results


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


def engine_pairs(results: list[Result]) -> dict[tuple[str, str], tuple[Result, Result]]:
    """(env, clock) -> (engine, bare) for the engine-overhead benchmarks that have both halves."""
    engine = {(r.env, r.clock): r for r in results if r.kind == "engine_overhead" and r.backend == "engine"}
    bare = {(r.env, r.clock): r for r in results if r.kind == "engine_overhead" and r.backend == "bare"}
    return {key: (engine[key], bare[key]) for key in sorted(engine.keys() & bare.keys(), key=str)}


def render(data: dict[str, Any]) -> str:
    """The markdown written between the README markers."""
    results = load_results(data)
    machine, commit = data.get("machine_info", {}), data.get("commit_info", {})
    native = {(r.env, r.num_envs, r.num_threads): r for r in results
              if r.kind == "throughput" and r.backend == "native"}
    reference = {(r.env, r.num_envs): r for r in results if r.kind == "throughput" and r.backend == "reference"}
    round_trip = {(r.env, r.num_threads): r for r in results if r.kind == "round_trip"}
    pairs = engine_pairs(results)

    dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
    build = machine.get("hmasd_build", {})
    load = machine.get("load_average_at_start") or []
    lines = [
        f"Run of {data.get('datetime', '?')} (UTC) at commit `{str(commit.get('id', '?'))[:12]}`{dirty}.",
        "",
        f"- CPU: {machine.get('cpu_model', '?')}, {machine.get('usable_cores', '?')} usable cores "
        f"({machine.get('logical_cpus', '?')} logical CPUs); load average at start "
        f"{' / '.join(str(x) for x in load) or '?'} (1 / 5 / 15 min)",
        f"- Python {machine.get('python_version', '?')} ({machine.get('python_implementation', '?')}), "
        f"NumPy {machine.get('numpy_version', '?')}, pytest-benchmark {data.get('version', '?')}, "
        f"hmasd native build: compiler {build.get('compiler', '?')}, OpenMP {build.get('openmp', '?')}",
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
            "| env | clock | engine, agent-steps/s | bare env, agent-steps/s | overhead (median) | overhead (best) |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for (env, clock), (eng, bare) in pairs.items():
            lines.append(f"| {env} | {clock} | {fmt_rate(eng.rate)} | {fmt_rate(bare.rate)} | "
                         f"{fmt_pct(eng.median / bare.median - 1)} | {fmt_pct(eng.best / bare.best - 1)} |")
        for env in sorted({env for env, _ in pairs}):
            per_clock = [(clock, eng.median / bare.median - 1) for (e, clock), (eng, bare) in pairs.items() if e == env]
            worst = max(overhead for _, overhead in per_clock)
            detail = ", ".join(f"{clock} {fmt_pct(overhead)}" for clock, overhead in per_clock)
            engine_checks.append((f"{env}: engine overhead at E={first_engine.num_envs} {detail} "
                                  f"(target <= {fmt_pct(TARGET_ENGINE_OVERHEAD)} on every clock)",
                                  worst <= TARGET_ENGINE_OVERHEAD))
        lines += ["", "Target, engine overhead <= 15 % (median times, every clock): "
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


def write_readme(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    section = f"{START}\n{block}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + "## Results\n\n" + section + "\n"
    readme.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", type=Path, help="write from this benchmark JSON instead of running the suite")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where the run saves its JSON ({DEFAULT_JSON})")
    parser.add_argument("--readme", type=Path, default=README, help="markdown file with the results markers")
    parser.add_argument("--no-write", action="store_true", help="print the table without touching the README")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    json_path: Path = args.from_json or args.json
    if args.from_json is None:
        run_suite(json_path, args.pytest_args)
    block = render(json.loads(json_path.read_text(encoding="utf-8")))
    print(block)
    if not args.no_write:
        write_readme(args.readme, block)
        print(f"\nwrote results into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
