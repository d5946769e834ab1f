"""hmasd-audit: the symmetry audit finds a planted index bias, keeps its false-positive rate, tells slot from id,
flags unequal pipelines and measures the concordance of agent orderings across seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hmasd.diagnostics import stats
from hmasd.diagnostics.audit import attribute, main, random_permutations

SMALL_GRID = ["--set", "grid_size=4"]  # two agents on one hare are common, so the tie-break bias has room to show


def audit(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    """Runs ``hmasd-audit argv --out tmp_path`` in-process; returns the exit code and the JSON report."""
    code = main([*argv, "--out", str(tmp_path)])
    reports = list(tmp_path.glob("audit_*.json"))
    assert len(reports) == 1, reports
    return code, json.loads(reports[0].read_text())


# ---- statistics -----------------------------------------------------------------------------------------------------


def test_distribution_functions_match_reference_values():
    assert stats.chi2_sf(3.8414588206941285, 1) == pytest.approx(0.05, rel=1e-10)
    assert stats.chi2_sf(7.814727903251178, 3) == pytest.approx(0.05, rel=1e-10)
    assert stats.chi2_sf(0.0, 3) == 1.0 and stats.chi2_sf(500.0, 3) < 1e-100
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706204736174696, rel=1e-12)
    assert stats.t_quantile(0.975, 2) == pytest.approx(4.302652729749463, rel=1e-12)
    assert stats.t_quantile(0.975, 3) == pytest.approx(3.182446305283708, rel=2e-3)
    assert stats.t_quantile(0.975, 10) == pytest.approx(2.228138851986274, rel=1e-5)
    assert stats.t_quantile(0.975, 1000) == pytest.approx(1.9623390808264083, rel=1e-9)


def test_friedman_matches_the_textbook_statistic_without_ties():
    ranks = np.array([[1, 2, 3], [1, 3, 2], [1, 2, 3], [2, 1, 3], [1, 2, 3]], dtype=float)
    n, k = ranks.shape
    textbook = 12 / (n * k * (k + 1)) * np.sum(ranks.sum(axis=0) ** 2) - 3 * n * (k + 1)
    result = stats.friedman_test(ranks * 10.0)  # any monotone values give the same ranks
    assert result["statistic"] == pytest.approx(textbook)
    assert result["p_value"] == pytest.approx(stats.chi2_sf(textbook, k - 1))
    assert stats.friedman_test(np.ones((5, 3)))["p_value"] == 1.0  # only ties: no evidence


def test_permutation_test_is_calibrated_on_exchangeable_data():
    """Episodes with a shared effect and exchangeable agents: rejections at 5% stay near 5%."""
    rng = np.random.default_rng(11)
    p_values = []
    for seed in range(200):
        data = rng.normal(size=(60, 1)) * 3 + rng.exponential(size=(60, 4))  # shared episode effect, skewed noise
        p_values.append(stats.permutation_test(data, n_perm=199, seed=seed).p_value)
    rejections = int(np.sum(np.array(p_values) < 0.05))
    assert 2 <= rejections <= 20  # Binomial(200, 0.05): mean 10, P(outside) < 0.5%


def test_permutation_test_reports_orderings():
    data = np.random.default_rng(0).normal(size=(400, 3)) + np.array([0.3, 0.0, -0.3])
    result = stats.permutation_test(data, n_perm=500, seed=1)
    assert result.ordering == [0, 1, 2] and result.p_value == pytest.approx(1 / 501)
    assert result.p_ordering_naive == pytest.approx(1 / 6)
    assert result.p_same_ordering == pytest.approx(1 / 6, abs=0.06)  # ~1/N! by the symmetry of the null
    assert result.p_this_ordering_as_clear <= result.p_ordering_as_clear
    assert result.p_this_ordering_as_clear < 0.01


def test_kendalls_w_extremes():
    same = np.tile([4.0, 3.0, 2.0, 1.0], (5, 1)) + np.random.default_rng(0).uniform(0, 0.1, (5, 4))
    result = stats.kendalls_w(same)
    assert result["W"] == pytest.approx(1.0)
    assert result["p_method"] == "monte_carlo" and result["p_value"] < 1e-3  # (4!)^4 combinations: Monte Carlo
    assert result["mean_ranks"] == [4.0, 3.0, 2.0, 1.0]
    three = stats.kendalls_w(same[:3])  # (4!)^2 = 576 combinations: exact
    assert three["p_method"] == "exact" and three["p_value"] == pytest.approx(1 / 576)
    opposite = stats.kendalls_w(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    assert opposite["W"] == pytest.approx(0.0) and opposite["p_value"] == 1.0


# ---- env -------------------------------------------------------------------------------------------------------------


def test_env_random_tie_break_is_symmetric(tmp_path, capsys):
    code, report = audit(tmp_path, "env", "--env", "stag_hunt", "--episodes", "3000", *SMALL_GRID,
                         "--set", "tie_break=random")
    assert code == 0 and report["verdict"] == "symmetric" and report["favoured"] is None
    assert report["analysis"]["blocks"] == 3000 and min(report["analysis"]["mean_return"]) > 1.0  # prey are caught
    assert report["env_options"] == {"grid_size": 4, "tie_break": "random"}
    assert "verdict: SYMMETRIC at alpha = 0.01" in capsys.readouterr().out
    assert (tmp_path / "audit_env.png").stat().st_size > 0


def test_env_index_tie_break_is_asymmetric_and_favours_agent_zero(tmp_path, capsys):
    code, report = audit(tmp_path, "env", "--episodes", "3000", *SMALL_GRID, "--set", "tie_break=index")
    assert code == 1 and report["verdict"] == "asymmetric" and report["favoured"] == 0
    assert report["analysis"]["permutation_test"]["p_value"] < 0.01
    assert report["analysis"]["friedman"]["p_value"] < 0.01
    out = capsys.readouterr().out
    assert "verdict: ASYMMETRIC at alpha = 0.01" in out and "agent 0 is favoured" in out


def test_false_positive_rate_stays_near_alpha_and_the_bias_is_still_found(tmp_path):
    alpha, seeds = 0.05, 20
    rejections = 0
    for seed in range(seeds):
        out = tmp_path / f"random_{seed}"
        code, report = audit(out, "env", "--episodes", "400", "--n-perm", "400", "--alpha", str(alpha),
                             "--seed", str(seed), "--no-plot", *SMALL_GRID, "--set", "tie_break=random")
        rejections += report["verdict"] == "asymmetric"
        assert code == (1 if report["verdict"] == "asymmetric" else 0)
    # P(Binomial(20, 0.05) >= 5) = 0.26%
    assert rejections <= 4
    for seed in range(3):
        code, report = audit(tmp_path / f"index_{seed}", "env", "--episodes", "2500", "--n-perm", "400", "--alpha",
                             str(alpha), "--seed", str(seed), "--no-plot", *SMALL_GRID, "--set", "tie_break=index")
        assert report["verdict"] == "asymmetric" and report["favoured"] == 0


def test_env_audit_does_not_need_torch(tmp_path):
    script = ("import sys; from hmasd.diagnostics.audit import main; "
              f"code = main(['env', '--episodes', '200', '--n-perm', '100', '--out', {str(tmp_path)!r}]); "
              "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)")
    # run outside the source tree: there `import hmasd` would find the uncompiled sources, not the install
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert (tmp_path / "audit_env.json").is_file()


def test_bad_options_are_reported_not_raised(tmp_path, capsys):
    assert main(["env", "--set", "no_such_option=1", "--out", str(tmp_path)]) == 2
    assert "no_such_option" in capsys.readouterr().err
    assert main(["env", "--env", "no_such_env", "--out", str(tmp_path)]) == 2


UAV_SMALL = ["--env", "uav_coverage", "--set", "num_users=12", "--set", "max_steps=20"]


def test_env_audit_runs_on_the_continuous_uav_env(tmp_path, capsys):
    """uav_coverage has continuous actions [E, N, 3] and no action mask: random play samples the Box."""
    code, report = audit(tmp_path, "env", *UAV_SMALL, "--episodes", "40", "--n-perm", "200")
    assert code == 0 and report["verdict"] == "symmetric" and report["favoured"] is None
    assert report["env"] == "uav_coverage" and report["env_options"] == {"num_users": 12, "max_steps": 20}
    assert report["policy"] == "random (uniform over the action space [-1, 1]^3)"
    analysis = report["analysis"]
    assert analysis["agents"] == 5 and analysis["blocks"] == 40
    for key in ("mean_return", "ci95_low", "ci95_high", "advantage"):
        assert len(analysis[key]) == 5, key
    mean = analysis["mean_return"]
    assert mean[0] > 0 and all(m == pytest.approx(mean[0]) for m in mean)  # one team reward for all 5 UAVs
    assert any("team reward" in note for note in analysis["notes"])
    out = capsys.readouterr().out
    assert "verdict: SYMMETRIC at alpha = 0.01" in out
    assert (tmp_path / "audit_env.png").stat().st_size > 0
    again = audit(tmp_path / "again", "env", *UAV_SMALL, "--episodes", "40", "--n-perm", "200")[1]
    assert again["analysis"]["mean_return"] == mean  # seeded
    other = audit(tmp_path / "other", "env", *UAV_SMALL, "--episodes", "40", "--n-perm", "200", "--seed", "1")[1]
    assert other["analysis"]["mean_return"] != mean


def test_permute_audit_runs_on_the_continuous_uav_env(tmp_path):
    code, report = audit(tmp_path, "permute", *UAV_SMALL, "--episodes", "30", "--n-perm", "200", "--no-plot")
    assert code == 0 and report["follows"] == "neither"
    assert report["attribution"]["by_slot"]["agents"] == report["attribution"]["by_id"]["agents"] == 5


def test_module_help(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hmasd.diagnostics.audit", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("env", "permute", "policy", "runs", "pipeline"):
        assert command in result.stdout


# ---- permute ---------------------------------------------------------------------------------------------------------


def test_permute_attributes_the_planted_bias_to_the_slot(tmp_path, capsys):
    code, report = audit(tmp_path, "permute", "--episodes", "3000", *SMALL_GRID, "--set", "tie_break=index")
    assert code == 1 and report["follows"] == "slot"
    assert report["attribution"]["by_slot"]["favoured"] == 0
    assert report["attribution"]["by_id"]["verdict"] == "symmetric"
    assert "follows the physical slot" in capsys.readouterr().out
    assert (tmp_path / "audit_permute.png").is_file()


def test_attribute_follows_an_id_advantage():
    """A policy whose agent 0 is better, wherever it plays: the advantage moves with the id."""
    rng = np.random.default_rng(3)
    by_id = rng.normal(size=(1500, 4)) + np.array([0.4, 0.0, 0.0, 0.0])
    perms = random_permutations(rng, 1500, 4)
    slot = np.empty_like(by_id)
    np.put_along_axis(slot, perms, by_id, axis=1)  # id i plays in slot perms[e, i]
    result = attribute(slot, perms, alpha=0.01, n_perm=500)
    assert result["follows"] == "id" and result["by_id"]["favoured"] == 0


# ---- pipeline --------------------------------------------------------------------------------------------------------


def write_agents(run: Path, changes: dict[int, dict] | None = None, sharing: str = "independent") -> Path:
    agents = []
    for i in range(4):
        entry = {"agent": i, "samples_pushed": 14_000, "updates_applied": 10,
                 "network_config": {"lr": 0.0005, "hidden": 64, "entropy_coef": 0.01}}
        for key, value in (changes or {}).get(i, {}).items():
            if key.startswith("network_config."):
                entry["network_config"][key.split(".", 1)[1]] = value
            else:
                entry[key] = value
        agents.append(entry)
    run.mkdir(parents=True, exist_ok=True)
    (run / "agents.json").write_text(json.dumps({"policy_sharing": sharing, "agents": agents}))
    return run


def test_pipeline_passes_equal_agents(tmp_path):
    run = write_agents(tmp_path / "run")
    code, report = audit(tmp_path / "out", "pipeline", str(run))
    assert code == 0 and report["verdict"] == "symmetric" and report["differences"] == []
    assert report["fields_compared"][:2] == ["samples_pushed", "updates_applied"]


def test_pipeline_flags_a_different_learning_rate(tmp_path, capsys):
    run = write_agents(tmp_path / "run", {2: {"network_config.lr": 0.001}})
    code, report = audit(tmp_path / "out", "pipeline", str(run))
    assert code == 1 and report["verdict"] == "asymmetric"
    assert report["first_difference"] == "agent 2: network_config.lr = 0.001 differs from agent 0 (0.0005)"
    assert "agent 2: network_config.lr = 0.001 differs from agent 0 (0.0005)" in capsys.readouterr().out


def test_pipeline_flags_different_update_counts_first(tmp_path):
    run = write_agents(tmp_path / "run", {1: {"updates_applied": 9}, 3: {"network_config.hidden": 32}})
    code, report = audit(tmp_path / "out", "pipeline", str(run))
    assert code == 1
    assert report["first_difference"] == "agent 1: updates_applied = 9 differs from agent 0 (10)"
    assert [d["field"] for d in report["differences"]] == ["updates_applied", "network_config.hidden"]


def test_pipeline_without_agents_json_is_an_error(tmp_path, capsys):
    assert main(["pipeline", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "agents.json" in capsys.readouterr().err


# ---- runs ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summary_writer():
    pytest.importorskip("tensorboard")
    return pytest.importorskip("torch.utils.tensorboard").SummaryWriter


def write_run(path: Path, writer_type, late: np.ndarray, early: np.ndarray, seed: int) -> Path:
    """A run folder whose Agents/<i>/Return is ``early`` for the first 80% of 50 iterations and ``late`` after."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed, "env": "stag_hunt"}))
    writer = writer_type(log_dir=str(path))
    for iteration in range(50):
        values = early if iteration < 40 else late
        for agent, value in enumerate(values):
            writer.add_scalar(f"Agents/{agent}/Return", float(value), global_step=(iteration + 1) * 140)
    writer.close()
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tensorboard/protobuf noise in the test's own writer
def test_runs_concordant_ordering_gives_w_near_one(tmp_path, summary_writer, capsys):
    rng = np.random.default_rng(0)
    # early training favours agent 3; the last 20% is what counts, and there agent 0 leads in every seed
    late = np.array([4.0, 3.0, 2.0, 1.0])
    runs = [write_run(tmp_path / f"seed{s}", summary_writer, late=late + rng.uniform(0, 0.1, 4),
                      early=late[::-1], seed=s) for s in range(5)]
    code, report = audit(tmp_path / "out", "runs", *map(str, runs))
    assert code == 1 and report["verdict"] == "asymmetric" and report["favoured"] == 0
    assert report["kendalls_w"]["W"] == pytest.approx(1.0)
    assert report["ordering"] == [0, 1, 2, 3] and report["runs"][0]["seed"] == 0 and report["runs"][0]["points"] == 10
    assert (tmp_path / "out" / "audit_runs.png").stat().st_size > 0
    assert "Kendall's W = 1.000" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_runs_random_orderings_give_low_w(tmp_path, summary_writer):
    rng = np.random.default_rng(1)
    runs = [write_run(tmp_path / f"seed{s}", summary_writer, late=rng.permutation(4).astype(float),
                      early=np.zeros(4), seed=s) for s in range(6)]
    code, report = audit(tmp_path / "out", "runs", *map(str, runs))
    assert code == 0 and report["verdict"] == "symmetric"
    assert report["kendalls_w"]["W"] < 0.4 and report["kendalls_w"]["p_value"] > 0.05
    assert (tmp_path / "out" / "audit_runs.png").is_file()


# ---- policy ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_policy_audit_on_a_tiny_checkpoint(tmp_path, sharing, capsys):
    pytest.importorskip("torch")
    from hmasd.train import checkpoint, preset
    from hmasd.train.loop import build, iterate

    trainer = build(preset("stag_hunt", num_envs=4, eval_interval=0, env_options={"grid_size": 4},
                           policy_sharing=sharing))
    iterate(trainer)
    path = checkpoint.save(trainer, tmp_path / "tiny.pt")
    code, report = audit(tmp_path / "out", "policy", "--model-path", str(path), "--episodes", "120",
                         "--n-perm", "300")
    assert code == (1 if report["verdict"] == "asymmetric" else 0)
    assert report["policy_sharing"] == sharing and report["env_options"] == {"grid_size": 4}
    assert report["follows"] in ("slot", "id", "both", "neither")
    for result in (report["analysis"], report["attribution"]["by_id"], report["attribution"]["by_slot"]):
        assert result["blocks"] == 120 and len(result["mean_return"]) == 4
        assert all(math.isfinite(v) for v in result["mean_return"])
    assert (tmp_path / "out" / "audit_policy.png").is_file()
    assert "hmasd-audit policy" in capsys.readouterr().out


def test_policy_with_a_missing_checkpoint_is_an_error(tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["policy", "--model-path", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
