"""benchmarks/learning/reproduce.py: --set follows hmasd-train's rules, and the fields the script owns win."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the learner needs the train extra (torch); CI installs it")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning" / "reproduce.py"


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_reaches_env_options_and_plain_fields():
    reproduce = load_script()
    config = reproduce.run_config("stag_hunt", 3, "mappo", 1000, False,
                                  {"env_options.reward_mode": "team", "eval_episodes": 200})
    assert config.env_options == {"reward_mode": "team"}
    assert config.eval_episodes == 200
    assert (config.seed, config.algo, config.total_steps, config.torch_threads) == (3, "mappo", 1000, 1)


def test_the_script_owned_fields_win_over_set():
    reproduce = load_script()
    config = reproduce.run_config("stag_hunt", 2, "hmasd", None, True, {"seed": 9, "eval_interval": 5})
    assert (config.seed, config.eval_interval, config.parallel_updates) == (2, 0, True)


def test_an_unknown_field_is_refused_by_name():
    reproduce = load_script()
    with pytest.raises(SystemExit, match="lamda_env"):
        reproduce.run_config("stag_hunt", 1, "hmasd", None, True, {"lamda_env": 1.0})
