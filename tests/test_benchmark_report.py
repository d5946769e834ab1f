"""benchmarks/report.py's merge of repeated runs (``--repeat``): medians over the runs, every ratio's range kept, and
runs of different suites refused."""

from __future__ import annotations

import copy
import importlib.util
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


def load_report() -> Any:
    spec = importlib.util.spec_from_file_location("hmasd_benchmark_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = load_report()


def bench(name: str, median: float, **info: Any) -> dict[str, Any]:
    return {"fullname": name, "stats": {"median": median, "min": median * 0.9, "mean": median, "rounds": 5},
            "extra_info": {"num_envs": 1024, **info}}


def run(scale: float, sb3_overhead: float, speedup: float, when: str) -> dict[str, Any]:
    """A run of two adapter_overhead halves (bare, gymnasium), an SB3 overhead and an SB3 speedup."""
    return {"datetime": when, "benchmarks": [
        bench("bare", 1.0, kind="adapter_overhead", backend="bare", env="stag_hunt"),
        bench("gym", scale, kind="adapter_overhead", backend="gymnasium", env="stag_hunt"),
        bench("sb3", 2.0, kind="sb3_adapter_overhead", backend="sb3", env="stag_hunt", overhead=sb3_overhead),
        bench("rollout", 0.5, kind="sb3_rollout", backend="sb3_native", env="stag_hunt", env_steps=100,
              speedup_vs_supersuit=speedup, target_met=speedup >= 5.0),
    ]}


def test_merge_takes_medians_over_the_runs_and_keeps_each_ratios_runs() -> None:
    runs = [run(1.2, 0.7, 4.0, "t1"), run(1.5, 0.9, 6.0, "t2"), run(1.3, 0.8, 5.5, "t3")]
    originals = copy.deepcopy(runs)
    merged = report.merge_runs(runs)
    assert runs == originals  # the runs themselves are left as they were
    info = {b["fullname"]: b["extra_info"] for b in merged["benchmarks"]}
    stats = {b["fullname"]: b["stats"] for b in merged["benchmarks"]}
    assert info["sb3"]["overhead"] == 0.8 and info["sb3"]["overhead_runs"] == [0.7, 0.9, 0.8]
    assert info["rollout"]["speedup_vs_supersuit"] == 5.5
    assert info["rollout"]["speedup_vs_supersuit_runs"] == [4, 6, 5.5]
    # the gymnasium pair's ratio is divided within each run, then its median taken
    assert info["gym"]["overhead_vs_bare_runs"] == pytest.approx([0.2, 0.5, 0.3])
    assert info["gym"]["overhead_vs_bare"] == pytest.approx(0.3)
    assert stats["gym"]["median"] == 1.3 and stats["gym"]["min"] == pytest.approx(1.2 * 0.9)
    assert "target_met_runs" not in info["rollout"]  # flags are not ratios
    assert merged["runs"] == 3 and merged["run_datetimes"] == ["t1", "t2", "t3"]


def test_the_adapter_table_shows_the_median_and_the_range() -> None:
    text = report.render_adapters(report.merge_runs([run(1.2, 0.7, 4.0, "t1"), run(1.5, 0.9, 6.0, "t2"),
                                                     run(1.3, 0.8, 5.5, "t3")]))
    assert "3 runs, the first of t1" in text
    # the median of the runs' ratios (+30 %), not the ratio of the median calls (1.3 / 1.0 here too, so skew one run)
    assert "| +30 % [+20 %, +50 %] | <= +25 %: **not met** |" in text
    skewed = [run(1.2, 0.7, 4.0, "t1"), run(1.5, 0.9, 6.0, "t2"), run(1.3, 0.8, 5.5, "t3")]
    skewed[2]["benchmarks"][0]["stats"]["median"] = 1.3 / 1.4  # run 3's bare step faster: its ratio +40 %
    text = report.render_adapters(report.merge_runs(skewed))
    assert "| +40 % [+20 %, +50 %] | <= +25 %: **not met** |" in text
    assert "| 5.5x [4.0x, 6.0x] | supersuit | >= 5x: **met** |" in text
    assert "[" not in report.render_adapters(run(1.2, 0.7, 4.0, "t1")).split("###", 1)[1]  # one run: no range


def test_runs_of_different_suites_are_refused() -> None:
    other = run(1.2, 0.7, 4.0, "t2")
    other["benchmarks"] = other["benchmarks"][:-1]
    with pytest.raises(SystemExit, match="rollout is missing from run"):
        report.merge_runs([run(1.2, 0.7, 4.0, "t1"), other])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=7))
def test_a_merged_ratio_is_the_median_of_its_runs_and_lies_in_their_range(speedups: list[float]) -> None:
    merged = report.merge_runs([run(1.0 + s / 100, 0.5, s, f"t{i}") for i, s in enumerate(speedups)])
    info = {b["fullname"]: b["extra_info"] for b in merged["benchmarks"]}
    assert info["rollout"]["speedup_vs_supersuit"] == statistics.median(speedups)
    assert min(speedups) <= info["rollout"]["speedup_vs_supersuit"] <= max(speedups)
    gym = info["gym"]
    assert gym["overhead_vs_bare"] == pytest.approx(statistics.median(gym["overhead_vs_bare_runs"]))


def test_repeat_refuses_nonsense_before_running(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        report.main(["--repeat", "0", "--no-write"])
    with pytest.raises(SystemExit):
        report.main(["--repeat", "2", "--from-json", str(tmp_path / "x.json"), "--no-write"])
