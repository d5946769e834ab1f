"""benchmarks/learning/reproduce.py: --set follows hmasd-train's rules, and the fields the script owns win."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")

from learning_scripts import load_script  # noqa: E402


def test_set_reaches_env_options_and_plain_fields():
    reproduce = load_script("reproduce")
    config = reproduce.run_config("stag_hunt", 3, "mappo", 1000, False,
                                  {"env_options.reward_mode": "team", "eval_episodes": 200})
    assert config.env_options == {"reward_mode": "team"}
    assert config.eval_episodes == 200
    assert (config.seed, config.algo, config.total_steps, config.torch_threads) == (3, "mappo", 1000, 1)


def test_the_script_owned_fields_win_over_set():
    reproduce = load_script("reproduce")
    config = reproduce.run_config("stag_hunt", 2, "hmasd", None, True, {"seed": 9, "eval_interval": 5})
    assert (config.seed, config.eval_interval, config.parallel_updates) == (2, 0, True)


def test_an_unknown_field_is_refused_by_name():
    reproduce = load_script("reproduce")
    with pytest.raises(SystemExit, match="lamda_env"):
        reproduce.run_config("stag_hunt", 1, "hmasd", None, True, {"lamda_env": 1.0})


def test_the_stag_hunt_table_reads_the_last_evaluation_and_averages_seeds(tmp_path):
    table = load_script("stag_hunt_table")
    point = lambda steps, ret, stags: {"env_steps": steps, "mean_return": ret, "stags": stags,  # noqa: E731
                                       "hares": [1.0, 2.0], "episodes": 200}
    for seed, last in ((1, 5.0), (2, 7.0)):
        record = {"seed": seed, "env_steps": 20, "set": {}, "curve": [point(10, 1.0, [0.5, 0.25]),
                                                                        point(20, last, [0.0, 0.125])]}
        (tmp_path / f"hmasd_seed_{seed}.json").write_text(json.dumps(record))
    label, records = table.load(f"HMASD={tmp_path}:hmasd")
    results = [table.seed_result(label, r) for r in records]
    assert [(r.seed, r.per_agent_return, r.stags, r.hares, r.most_stags) for r in results] == [
        (1, 5.0, 0.125, 3.0, 0.75), (2, 7.0, 0.125, 3.0, 0.75)]
    assert "| **HMASD** | mean of 2 | | **6.00** ± 1.00 |" in table.table(results)
    with pytest.raises(SystemExit, match="no mappo_seed_"):
        table.load(f"MAPPO={tmp_path}:mappo")
