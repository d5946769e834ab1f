"""The CPU training path gives what it gave when it was recorded: 3 iterations of 4 short runs (stag_hunt,
alice_and_bob with a GRU and the global clock, uav_coverage's episode metrics, MAPPO) against the metrics in
tests/data/train_cpu_reference.json (see tests/train_cpu_reference.py for when they were recorded). Bit-identical
on the machine that recorded them; compared to 1e-5 (relative) here so that another CPU's float kernels do not fail
it, while any change of logic does. The loss statistics get an absolute 1e-4 as well: each is a mean or a variance
ratio of O(1) terms that nearly cancel (a PPO policy loss near -0.001, an explained variance near 0.3), so the
float32 rounding of another CPU's kernels (AVX2 against AVX-512) moves them by up to ~5e-5 after two updates, far
above 1e-5 of their value; a change of logic moves them by orders of magnitude more, and the episode metrics next
to them stay within 1e-5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from train_cpu_reference import record  # noqa: E402

pytestmark = pytest.mark.trainer  # deselected by the sanitizer job (.ci/sanitize)

REFERENCE = Path(__file__).parent / "data" / "train_cpu_reference.json"
LOSS_ATOL = 1e-4  # the "Losses/..." statistics (module docstring)


def test_cpu_training_matches_the_recorded_runs():
    recorded, now = json.loads(REFERENCE.read_text()), record()
    assert recorded.keys() == now.keys()
    for case in recorded:
        for i, (want, got) in enumerate(zip(recorded[case], now[case], strict=True)):
            assert want.keys() == got.keys(), (case, i)
            for key in want:
                if isinstance(want[key], dict):  # episode metrics by "t,e"
                    assert want[key].keys() == got[key].keys(), (case, key)
                    for cell in want[key]:
                        for field, value in want[key][cell].items():
                            np.testing.assert_allclose(got[key][cell][field], value, rtol=1e-5, atol=1e-7,
                                                       err_msg=f"{case} {key} {cell} {field}")
                else:
                    atol = LOSS_ATOL if key.startswith("Losses/") else 1e-7
                    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=atol,
                                               err_msg=f"{case} iteration {i} {key}")
