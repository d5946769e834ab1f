"""Short CPU training runs whose metrics were recorded, so that a change of the learner's logic shows.

tests/data/train_cpu_reference.json was written by ``python tests/train_cpu_reference.py
tests/data/train_cpu_reference.json``; test_train_cpu_unchanged.py compares against it. First recorded on the code
of f7b3c7f (before the device path); recorded again when the low-level bootstrap at the barrier became the
expectation over the team skill instead of one sampled Z' (the refactor into hmasd/algo/targets.py before it was
checked against the old recording and matched). Every run uses one torch thread, so the recording does not depend
on the machine's core count.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hmasd.train.config import TrainConfig
from hmasd.train.loop import build, iterate

CASES = {
    "stag_hunt": dict(env="stag_hunt", horizon=14, skill_interval=7, num_team_skills=3, num_indiv_skills=3,
                      lambda_env=1.0, num_envs=6, total_steps=10**6, high_epochs=2, low_epochs=2, disc_epochs=2),
    "alice_and_bob_rnn": dict(env="alice_and_bob", horizon=20, skill_interval=5, num_envs=4, total_steps=10**6,
                              recurrent=True, chunk_length=10, high_epochs=2, low_epochs=2, disc_epochs=2, clock="global"),
    "uav": dict(env="uav_coverage", env_options={"max_steps": 30}, horizon=20, skill_interval=10, num_team_skills=2,
                num_indiv_skills=2, lambda_env=1.0, num_envs=3, total_steps=10**6, high_epochs=2, low_epochs=2,
                disc_epochs=2),
    "mappo": dict(env="stag_hunt", algo="mappo", horizon=14, num_envs=4, total_steps=10**6, low_epochs=2),
}
TIMING = ("Sync/CollectionTime", "Sync/UpdateTime", "Sync/Efficiency", "Training/SPS")

def record() -> dict[str, list[dict[str, Any]]]:
    """Per case: the metrics of 3 iterations (timings and the device sync count dropped), then the last batch's
    episode metrics, env rewards and high-level envs."""
    out = {}
    for name, kw in CASES.items():
        trainer = build(TrainConfig(**kw, torch_threads=1))
        hist = []
        for _ in range(3):
            m = iterate(trainer)
            hist.append({k: v for k, v in m.items()
                         if k not in TIMING and not k.startswith(("Sync/host", "Time/"))})
        b = trainer.last_batch
        hist.append({"episode_metrics": {f"{t},{e}": v for (t, e), v in sorted(b.episode_metrics.items())},
                     "env_reward": b.env_reward.tolist(), "high_env": b.high_env.tolist()})
        out[name] = hist
    return out

if __name__ == "__main__":
    json.dump(record(), open(sys.argv[1], "w"))
