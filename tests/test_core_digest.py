"""The native batch core reproduces, bit for bit, trajectories and batches recorded before it was refactored."""

from __future__ import annotations

import json

import pytest

from core_digest import DIGEST_FILE, ENGINE_CASES, ENV_CASES, engine_digest, env_digest

RECORDED: dict[str, str] = json.loads(DIGEST_FILE.read_text())


def test_every_case_was_recorded():
    cases = {f"env/{c[0]}" for c in ENV_CASES} | {f"engine/{c[0]}" for c in ENGINE_CASES}
    assert cases == set(RECORDED)


@pytest.mark.parametrize("case", [c[0] for c in ENV_CASES])
def test_env_trajectory_digest(case):
    assert env_digest(case) == RECORDED[f"env/{case}"]


@pytest.mark.parametrize("case", [c[0] for c in ENGINE_CASES])
def test_engine_batch_digest(case):
    assert engine_digest(case) == RECORDED[f"engine/{case}"]
