"""Shared helpers for the test suite."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import hmasd.envs
from hmasd.envs import random_actions  # the package's random policy, for every action space

__all__ = ["ENV_NAMES", "gpu_marks", "random_actions", "snapshot_buffers"]

# Every registered env: a new env is in the conformance, bad-input, memory and determinism tests from its first
# commit, not when someone remembers to add it to a list.
ENV_NAMES = hmasd.envs.registered_envs()


def gpu_marks() -> list:
    """The `gpu` marker and the skips, with their reasons, of a test that needs the CUDA backend and a device."""
    from hmasd import _native

    info = _native.build_info()
    return [
        pytest.mark.gpu,
        pytest.mark.skipif(not info["cuda"], reason="this build has no CUDA backend (built without nvcc)"),
        pytest.mark.skipif(info["cuda"] and info["cuda_devices"] == 0,
                           reason="no CUDA device is visible on this machine"),
    ]


def snapshot_buffers(env) -> dict[str, np.ndarray]:
    """Copies of every buffer an env exposes, for comparing two envs."""
    out = {name: getattr(env, name).copy() for name in
           ("obs", "state", "rewards", "terminated", "truncated", "action_mask", "episode_return", "episode_length")}
    out.update({f"info_{k}": v.copy() for k, v in env.episode_info.items()})
    return out


@pytest.fixture(params=ENV_NAMES)
def env_name(request) -> str:
    return request.param


# ---- the fuzz counts (tests/test_fuzz.py, tests/fuzz_support.py) ---------------------------------------------------


def _fuzz_log():
    module = sys.modules.get("fuzz_support")
    return module.LOG if module is not None and module.LOG.counts else None


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The table of fuzzed calls per entry point; as JSON in $HMASD_FUZZ_COUNTS too, when that is set."""
    log = _fuzz_log()
    if log is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz counts per entry point")
    write(f"{'entry point':34} {'calls':>7} {'rejected_clean':>15} {'accepted_equal':>15} {'violations':>11}")
    for row in log.table():
        write(f"{row['entry_point']:34} {row['calls']:7d} {row['rejected_clean']:15d} {row['accepted_equal']:15d} "
              f"{row['violations']:11d}")
    if log.violations:
        terminalreporter.section("fuzz contract violations (one line per finding, first example)")
        for v in sorted(log.violations.values(), key=lambda v: (v["entry"], v["env"], v["kind"], v["problem"])):
            write(f"{v['entry']} [{v['env']}] {v['kind']}: {v['problem']} (x{v['times']}): {v['example'][:300]}")
    path = os.environ.get("HMASD_FUZZ_COUNTS")
    if path:
        with open(path, "w") as out:
            json.dump(log.as_json(), out, indent=1)
        write(f"fuzz counts written to {path}")


def pytest_sessionfinish(session, exitstatus) -> None:
    """In keep-going mode (HMASD_FUZZ_KEEP_GOING=1) the recorded violations still fail the run."""
    log = _fuzz_log()
    if log is not None and log.violations and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test: deterministic runs, and on this 2-core machine a core busy with the
    native env (or another process) would stall every parallel torch op."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
