"""Runs the env throughput benchmarks and writes their results table into benchmarks/README.md.

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
                              num_envs=int(info["num_envs"]), num_threads=info["num_threads"],
                              agent_steps=int(info["agent_steps"]), median=float(stats["median"]),
                              best=float(stats["min"]), mean=float(stats["mean"]), rounds=int(stats["rounds"])))
    return results


def fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(data: dict[str, Any]) -> str:
    """The markdown written between the README markers."""
    results = load_results(data)
    machine, commit = data.get("machine_info", {}), data.get("commit_info", {})
    native = {(r.env, r.num_envs, r.num_threads): r for r in results
              if r.kind == "throughput" and r.backend == "native"}
    reference = {(r.env, r.num_envs): r for r in results if r.kind == "throughput" and r.backend == "reference"}
    round_trip = {(r.env, r.num_threads): r for r in results if r.kind == "round_trip"}

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
