"""hmasd-audit: is an agent ordering like R_0 > R_1 > R_2 > R_3 in a symmetric game the env, the pipeline or chance?

Sub-commands, in the order to run them:

  runs DIR...        several run folders (seeds): per-agent returns over the last 20% of training, a box plot and
                     the concordance of the agent ordering across seeds (Kendall's W). Is the ordering systematic?
  env                the env alone under a uniformly random policy (valid moves only; uniform over [-1, 1] for
                     continuous actions). Is the env biased?
  permute            the same with agent ids shuffled every episode; returns are attributed to the id and to the
                     physical slot. (A random policy ignores its id, so only a slot advantage can show here.)
  policy             a trained checkpoint, with fixed and with shuffled ids: does the advantage follow the learned
                     policy of an id or the slot it plays in?
  pipeline DIR       agents.json of a run: per-agent network configs, update counts and sample counts must match.

Each prints a report ending in a verdict (symmetric / asymmetric at --alpha, with the evidence) and writes
<out>/audit_<command>.json and a PNG plot. Exit status: 0 symmetric (or inconclusive), 1 asymmetric, 2 error.

The test of equal means treats episodes as blocks: under the null (a symmetric game) the agent columns of every
episode are exchangeable, and the p-value comes from shuffling them (see hmasd.diagnostics.stats).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmasd._cli import json_default, parse_pairs
from hmasd.diagnostics import stats

COMMANDS = ("env", "permute", "policy", "runs", "pipeline")
EXIT_SYMMETRIC, EXIT_ASYMMETRIC, EXIT_ERROR = 0, 1, 2


class AuditError(Exception):
    """A problem with the audit's inputs (missing file, unreadable run, mismatched agents), reported without a
    traceback."""


# ---- data collection ---------------------------------------------------------------------------------------------


def random_policy_returns(env_name: str, episodes: int, seed: int = 0, options: dict[str, Any] | None = None,
                          num_threads: int = 1, max_envs: int = 4096, max_steps: int = 10_000_000) -> np.ndarray:
    """Per-agent returns float64[episodes, N] (indexed by env slot) of a uniformly random policy.

    Runs min(episodes, max_envs) env copies and keeps the first ``ceil(episodes / E)`` episodes of each, taken
    round by round, so that short episodes are not over-represented (as they would be by "the first ``episodes``
    to finish").
    """
    import hmasd.envs

    if episodes < 2:
        raise AuditError(f"episodes must be >= 2, got {episodes}")
    env_seed_seq, action_seed_seq = np.random.SeedSequence(seed).spawn(2)
    num_envs = min(episodes, max_envs)
    rounds = -(-episodes // num_envs)
    try:
        env = hmasd.envs.make(env_name, num_envs=num_envs, seed=int(env_seed_seq.generate_state(1, np.uint64)[0]),
                              num_threads=num_threads, **(options or {}))
    except (ValueError, TypeError) as error:  # unknown env or option, bad option value
        raise AuditError(str(error)) from None
    env.reset()
    rng = np.random.default_rng(action_seed_seq)
    out = np.zeros((rounds, num_envs, env.num_agents))
    count = np.zeros(num_envs, dtype=np.int64)
    for _ in range(max_steps):
        env.step(hmasd.envs.random_actions(env, rng))
        finished = np.flatnonzero((env.terminated | env.truncated) & (count < rounds))
        if finished.size:
            out[count[finished], finished] = env.episode_return[finished]
            count[finished] += 1
            if count.min() >= rounds:
                return out.reshape(rounds * num_envs, -1)[:episodes]
    raise AuditError(f"{env_name}: episodes did not finish within {max_steps} steps")


def random_policy_text(env_name: str, options: dict[str, Any] | None = None) -> str:
    """What the random policy draws from in ``env_name`` with ``options``, for the report."""
    import hmasd.envs
    from hmasd.envs.actions import random_actions_text

    return random_actions_text(hmasd.envs.make(env_name, num_envs=1, **(options or {})))


def random_permutations(rng: np.random.Generator, episodes: int, num_agents: int) -> np.ndarray:
    """int64[episodes, N], each row a uniformly random permutation: agent id i plays in slot perms[e, i]."""
    return np.argsort(rng.random((episodes, num_agents)), axis=1)


def returns_by_id(slot_returns: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Re-index slot returns by agent id: ``by_id[e, i] = slot_returns[e, perms[e, i]]``."""
    return np.take_along_axis(slot_returns, perms, axis=1)


# ---- analysis ----------------------------------------------------------------------------------------------------


def analyse(returns: np.ndarray, alpha: float, n_perm: int = 2000, seed: int = 0, unit: str = "agent",
            blocks: str = "episodes") -> dict[str, Any]:
    """Every statistic of one returns matrix [blocks, N] and the verdict at ``alpha``.

    ``unit`` names the columns in the evidence ("agent", "agent id", "slot"); ``blocks`` the rows.
    """
    x = np.asarray(returns, dtype=np.float64)
    n, k = x.shape
    mean, low, high = stats.mean_ci(x)
    adv, adv_low, adv_high = stats.advantage_ci(x)
    perm = stats.permutation_test(x, n_perm=n_perm, seed=seed)
    friedman = stats.friedman_test(x)
    asymmetric = perm.p_value < alpha
    favoured, least = int(np.argmax(mean)), int(np.argmin(mean))
    p_text = f"permutation p = {perm.p_value:.3g}"
    if asymmetric:
        evidence = (f"{unit} {favoured} is favoured and {unit} {least} least favoured: advantage over the "
                    f"{blocks[:-1]} mean {adv[favoured]:+.4g} [{adv_low[favoured]:+.4g}, {adv_high[favoured]:+.4g}] vs "
                    f"{adv[least]:+.4g} [{adv_low[least]:+.4g}, {adv_high[least]:+.4g}]; equal means rejected, "
                    f"{p_text} < alpha = {alpha:g} ({n_perm} permutations, {n} {blocks} as blocks)")
    else:
        half = float(np.max(adv_high - adv))
        evidence = (f"no {unit} stands out: {p_text} >= alpha = {alpha:g} ({n_perm} permutations, {n} {blocks} as "
                    f"blocks); the largest |advantage| over the {blocks[:-1]} mean is {np.max(np.abs(adv)):.3g} with "
                    f"95% CI half-widths up to {half:.3g}, so a bias much larger than that would have shown")
    notes = []
    if np.all(x == x[:, :1]):
        notes.append(f"every {blocks[:-1]} gave all {unit}s the same return (a team reward?): these data cannot "
                     "show an asymmetry")
    if 1.0 / (1 + n_perm) >= alpha:
        notes.append(f"n_perm = {n_perm} is too small: the smallest attainable p-value {1 / (1 + n_perm):.3g} is not "
                     f"below alpha = {alpha:g}")
    return {
        "blocks": n,
        "agents": k,
        "unit": unit,
        "mean_return": mean.tolist(),
        "ci95_low": low.tolist(),
        "ci95_high": high.tolist(),
        "advantage": adv.tolist(),
        "advantage_ci95_low": adv_low.tolist(),
        "advantage_ci95_high": adv_high.tolist(),
        "permutation_test": perm.to_dict(),
        "friedman": friedman,
        "alpha": alpha,
        "verdict": "asymmetric" if asymmetric else "symmetric",
        "favoured": favoured if asymmetric else None,
        "least_favoured": least if asymmetric else None,
        "evidence": evidence,
        "notes": notes,
    }


FOLLOWS_TEXT = {
    "slot": "the advantage follows the physical slot, not the agent id",
    "id": "the advantage follows the agent id, not the physical slot",
    "both": "there are advantages tied to the agent id and to the physical slot",
    "neither": "the advantage follows neither the agent id nor the physical slot",
}


def attribute(slot_returns: np.ndarray, perms: np.ndarray, alpha: float, n_perm: int = 2000,
              seed: int = 0) -> dict[str, Any]:
    """Tests returns attributed to the agent id and to the physical slot, each at alpha / 2 (Bonferroni).

    With ids shuffled uniformly per episode, a slot effect averages out of the id-attributed returns and an id
    effect out of the slot-attributed ones, and each test stays exact under its own null.
    """
    by_id = analyse(returns_by_id(slot_returns, perms), alpha / 2, n_perm, seed, unit="agent id")
    by_slot = analyse(slot_returns, alpha / 2, n_perm, seed + 1, unit="slot")
    follows = {(True, True): "both", (True, False): "id", (False, True): "slot", (False, False): "neither"}[
        (by_id["verdict"] == "asymmetric", by_slot["verdict"] == "asymmetric")]
    who = "".join(f"; {r['unit']} {r['favoured']} favoured, {r['unit']} {r['least_favoured']} least"
                  for r in (by_slot, by_id) if r["verdict"] == "asymmetric")
    return {"by_id": by_id, "by_slot": by_slot, "follows": follows, "alpha_each": alpha / 2,
            "evidence": (f"{FOLLOWS_TEXT[follows]}{who} (by id: permutation p = "
                         f"{by_id['permutation_test']['p_value']:.3g}; by slot: p = "
                         f"{by_slot['permutation_test']['p_value']:.3g}; each tested at alpha / 2 = {alpha / 2:g})")}


# ---- sub-commands ------------------------------------------------------------------------------------------------


def audit_env(env: str, episodes: int, seed: int, options: dict[str, Any], alpha: float, n_perm: int,
              num_threads: int = 1) -> dict[str, Any]:
    """`env`: random play, returns per slot."""
    returns = random_policy_returns(env, episodes, seed, options, num_threads)
    result = analyse(returns, alpha, n_perm, seed)
    return {"command": "env", "env": env, "env_options": options, "episodes": episodes, "seed": seed,
            "policy": f"random ({random_policy_text(env, options)})", "alpha": alpha, **_top(result),
            "analysis": result}


def audit_permute(env: str, episodes: int, seed: int, options: dict[str, Any], alpha: float, n_perm: int,
                  num_threads: int = 1) -> dict[str, Any]:
    """`permute`: random play with agent ids shuffled per episode; returns attributed to id and to slot."""
    slot_returns = random_policy_returns(env, episodes, seed, options, num_threads)
    perms = random_permutations(np.random.default_rng([seed, 1]), episodes, slot_returns.shape[1])
    result = attribute(slot_returns, perms, alpha, n_perm, seed)
    return {"command": "permute", "env": env, "env_options": options, "episodes": episodes, "seed": seed,
            "policy": f"random ({random_policy_text(env, options)}, blind to its id)", "alpha": alpha,
            "verdict": "symmetric" if result["follows"] == "neither" else "asymmetric", "follows": result["follows"],
            **_favoured_of(result), "evidence": result["evidence"], "attribution": result}


def audit_policy(model_path: str, episodes: int, seed: int, options: dict[str, Any], alpha: float, n_perm: int,
                 deterministic: bool = False) -> dict[str, Any]:
    """`policy`: a checkpoint with fixed ids (id = slot), then with ids shuffled per episode."""
    from hmasd.train import checkpoint
    from hmasd.train.evaluation import episode_returns
    from hmasd.train.loop import build

    try:
        data = checkpoint.load(model_path)
        config = checkpoint.config_of(data)
        config = config.replace(num_envs=1, env_options={**config.env_options, **options})
        trainer = build(config)
        checkpoint.restore(trainer, data, model_path, exact=False)
    except (checkpoint.CheckpointError, ValueError, TypeError) as error:  # unreadable, or --set broke the env
        raise AuditError(str(error)) from None

    def run(perms: np.ndarray | None, chunk_seed: int) -> np.ndarray:
        parts, chunk = [], 1024
        for start in range(0, episodes, chunk):
            part = None if perms is None else perms[start:start + chunk]
            parts.append(episode_returns(trainer, min(chunk, episodes - start), seed=chunk_seed + start,
                                         deterministic=deterministic, permutations=part))
        return np.concatenate(parts).astype(np.float64)

    fixed = run(None, seed * 1_000_003)
    n = fixed.shape[1]
    perms = random_permutations(np.random.default_rng([seed, 2]), episodes, n)
    shuffled = run(perms, seed * 1_000_003 + 500_009)
    fixed_result = analyse(fixed, alpha, n_perm, seed)
    attribution = attribute(shuffled, perms, alpha, n_perm, seed + 2)
    return {"command": "policy", "model_path": str(model_path), "env": config.env, "env_options": config.env_options,
            "algo": config.algo, "policy_sharing": getattr(config, "policy_sharing", "shared"),
            "deterministic": deterministic, "episodes": episodes, "seed": seed, "alpha": alpha, **_top(fixed_result),
            "evidence": f"{fixed_result['evidence']}. With ids shuffled per episode: {attribution['evidence']}",
            "follows": attribution["follows"], "analysis": fixed_result, "attribution": attribution}


def read_agent_returns(run: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{agent: (steps, values)}`` of the ``Agents/<i>/Return`` scalars in a run folder's TensorBoard events."""
    if not run.is_dir():
        raise AuditError(f"run folder {run} does not exist")
    with warnings.catch_warnings():  # tensorboard's reader warns on some protobuf versions
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        except ImportError:
            raise AuditError("`runs` needs tensorboard (pip install hmasd[train])") from None
        events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for tag in events.Tags()["scalars"]:
            match = re.fullmatch(r"Agents/(\d+)/Return", tag)
            if match:
                points = events.Scalars(tag)
                found[int(match.group(1))] = (np.array([p.step for p in points], dtype=np.float64),
                                              np.array([p.value for p in points], dtype=np.float64))
    if not found:
        raise AuditError(f"run folder {run} has no Agents/<i>/Return scalars in its TensorBoard events")
    if sorted(found) != list(range(len(found))):
        raise AuditError(f"run folder {run} has per-agent returns for agents {sorted(found)}, not 0..{len(found) - 1}")
    return found


def late_means(series: dict[int, tuple[np.ndarray, np.ndarray]], last_fraction: float) -> tuple[np.ndarray, int]:
    """Per-agent mean over the last ``last_fraction`` of the logged env-step range, and the number of points used."""
    first = min(float(s.min()) for s, _ in series.values())
    last = max(float(s.max()) for s, _ in series.values())
    cutoff = last - last_fraction * (last - first)
    means, points = [], []
    for agent in range(len(series)):
        steps, values = series[agent]
        keep = steps >= cutoff
        if not keep.any():  # this agent stopped logging early: its last point stands for the tail
            keep = steps == steps.max()
        means.append(values[keep].mean())
        points.append(int(keep.sum()))
    return np.array(means), min(points)


def audit_runs(runs: Sequence[str | Path], alpha: float, n_perm: int, seed: int = 0,
               last_fraction: float = 0.2) -> dict[str, Any]:
    """`runs`: per-seed late returns, their concordance (Kendall's W) and a seeds-as-blocks test of equal means."""
    if not 0 < last_fraction <= 1:
        raise AuditError(f"--last-fraction must be in (0, 1], got {last_fraction}")
    rows, details = [], []
    for run in map(Path, runs):
        means, points = late_means(read_agent_returns(run), last_fraction)
        config_path = run / "config.json"
        run_seed = json.loads(config_path.read_text()).get("seed") if config_path.is_file() else None
        if rows and len(means) != len(rows[0]):
            raise AuditError(f"run {run} has {len(means)} agents, {runs[0]} has {len(rows[0])}")
        rows.append(means)
        details.append({"run": str(run), "seed": run_seed, "late_mean_return": means.tolist(), "points": points})
    scores = np.array(rows)
    m, k = scores.shape
    report: dict[str, Any] = {"command": "runs", "runs": details, "last_fraction": last_fraction, "seeds": m,
                              "agents": k, "alpha": alpha}
    mean, low, high = stats.mean_ci(scores)
    report.update({"mean_return": mean.tolist(), "ci95_low": low.tolist(), "ci95_high": high.tolist()})
    if m < 2:
        report.update({"verdict": "inconclusive", "favoured": None, "least_favoured": None,
                       "evidence": "one run only: the ordering cannot be checked across seeds (give two or more)"})
        return report
    concordance = stats.kendalls_w(scores, seed=seed)
    report["kendalls_w"] = concordance
    report["seeds_as_blocks"] = analyse(scores, alpha, n_perm, seed, blocks="seeds")
    mean_ranks = np.array(concordance["mean_ranks"])
    order = [int(i) for i in np.argsort(-mean_ranks, kind="stable")]
    asymmetric = concordance["p_value"] < alpha
    w_text = (f"Kendall's W = {concordance['W']:.3f} over {m} seeds, p = {concordance['p_value']:.3g} "
              f"({concordance['p_method']}; chi-square approximation {concordance['p_value_chi2']:.3g})")
    if asymmetric:
        evidence = (f"the agent ordering {' > '.join(map(str, order))} (by mean rank) is concordant across seeds: "
                    f"{w_text} < alpha = {alpha:g}; agent {order[0]} favoured, agent {order[-1]} least favoured")
    else:
        evidence = f"the agent ordering is not consistent across seeds: {w_text} >= alpha = {alpha:g}"
    if concordance["min_attainable_p"] >= alpha:
        needed = 1 + math.ceil(math.log(alpha) / math.log(1.0 / math.factorial(k)) + 1e-9)
        evidence += (f"; note: with {m} seeds and {k} agents no p-value below {concordance['min_attainable_p']:.3g} "
                     f"is possible, use at least {needed} seeds")
    report.update({"verdict": "asymmetric" if asymmetric else "symmetric", "ordering": order,
                   "favoured": order[0] if asymmetric else None, "least_favoured": order[-1] if asymmetric else None,
                   "evidence": evidence})
    return report


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in _flatten(sub, f"{prefix}.{key}" if prefix else key)]
    return [(prefix, value)]


MISSING = object()


def agent_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """An agents.json entry as ``{dotted field: value}`` in comparison order: counts first, then the config."""
    flat = dict(_flatten({k: v for k, v in entry.items() if k != "agent"}, ""))
    first = [key for key in ("samples_pushed", "updates_applied") if key in flat]
    return {key: flat[key] for key in first + [key for key in flat if key not in first]}


def audit_pipeline(run: str | Path) -> dict[str, Any]:
    """`pipeline`: every agent of ``<run>/agents.json`` against agent 0, field by field."""
    path = Path(run) / "agents.json"
    if not path.is_file():
        raise AuditError(f"{path} does not exist (hmasd-train writes it into every run folder)")
    try:
        data = json.loads(path.read_text())
        entries = sorted(data["agents"], key=lambda entry: entry["agent"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AuditError(f"{path} is not a valid agents.json ({type(error).__name__}: {error})") from None
    ids = [entry["agent"] for entry in entries]
    if ids != list(range(len(ids))) or len(ids) < 2:
        raise AuditError(f"{path} lists agents {ids}; expected 0..N-1 with N >= 2")
    reference = agent_fields(entries[0])
    differences = []
    for entry in entries[1:]:
        fields = agent_fields(entry)
        for key in list(reference) + [key for key in fields if key not in reference]:
            mine, theirs = fields.get(key, MISSING), reference.get(key, MISSING)
            if mine is MISSING or theirs is MISSING or mine != theirs or isinstance(mine, bool) != isinstance(
                    theirs, bool):  # 1 == 1.0 (JSON numbers), but True is not 1
                if mine is MISSING:
                    text = f"agent {entry['agent']}: {key} is missing (agent 0 has {theirs!r})"
                elif theirs is MISSING:
                    text = f"agent {entry['agent']}: {key} = {mine!r} is not set for agent 0"
                else:
                    text = f"agent {entry['agent']}: {key} = {mine!r} differs from agent 0 ({theirs!r})"
                differences.append({"agent": entry["agent"], "field": key, "value": None if mine is MISSING else mine,
                                    "agent0_value": None if theirs is MISSING else theirs, "text": text})
    report = {"command": "pipeline", "run": str(run), "policy_sharing": data.get("policy_sharing"),
              "agents": len(entries), "fields_compared": list(reference), "differences": differences,
              "verdict": "asymmetric" if differences else "symmetric",
              "first_difference": differences[0]["text"] if differences else None}
    report["evidence"] = (f"{differences[0]['text']} ({len(differences)} difference(s) in all)" if differences else
                          f"all {len(entries)} agents have equal {', '.join(reference)}")
    return report


def _top(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("verdict", "favoured", "least_favoured", "evidence")}


def _favoured_of(attribution: dict[str, Any]) -> dict[str, Any]:
    """Favoured / least favoured of whichever attribution carries the advantage (the slot's when both do)."""
    for side in ("by_slot", "by_id"):
        if attribution[side]["verdict"] == "asymmetric":
            return {"favoured": attribution[side]["favoured"], "least_favoured": attribution[side]["least_favoured"],
                    "favoured_by": side[3:]}
    return {"favoured": None, "least_favoured": None, "favoured_by": None}


# ---- text and plots ----------------------------------------------------------------------------------------------


def _table(result: dict[str, Any], title: str) -> list[str]:
    unit = result["unit"]
    lines = [title, f"  {unit:<9} {'mean return [95% CI]':<34} advantage over the mean [95% CI]"]
    for i in range(result["agents"]):
        lines.append(f"  {i:<9} {result['mean_return'][i]:<10.4g} [{result['ci95_low'][i]:.4g}, "
                     f"{result['ci95_high'][i]:.4g}]".ljust(47) +
                     f"{result['advantage'][i]:+.4g} [{result['advantage_ci95_low'][i]:+.4g}, "
                     f"{result['advantage_ci95_high'][i]:+.4g}]")
    perm, fried = result["permutation_test"], result["friedman"]
    order = " > ".join(map(str, perm["ordering"]))
    lines += [
        f"  equal means, permutation test ({perm['n_perm']} draws, {result['blocks']} blocks): "
        f"p = {perm['p_value']:.3g}",
        f"  Friedman rank test: Q = {fried['statistic']:.3g} on {fried['dof']} dof, p = {fried['p_value']:.3g} "
        "(chi-square approximation)",
        f"  ordering {order}: chance of an ordering this clear (all neighbours apart by >= the observed smallest gap)"
        f" under exchangeability p = {perm['p_ordering_as_clear']:.3g}; of this very ordering, if named in advance, "
        f"p = {perm['p_this_ordering_as_clear']:.3g} (1/N! = {perm['p_ordering_naive']:.3g})",
    ]
    lines += [f"  note: {note}" for note in result["notes"]]
    return lines


def render(report: dict[str, Any]) -> str:
    """The human-readable report."""
    command = report["command"]
    lines = []
    if command in ("env", "permute"):
        lines.append(f"hmasd-audit {command}: {report['env']} {report['env_options'] or ''}, {report['episodes']} "
                     f"episodes, policy {report['policy']}, seed {report['seed']}")
    if command == "env":
        lines += _table(report["analysis"], "returns by env slot (= agent)")
    if command == "policy":
        lines.append(f"hmasd-audit policy: {report['model_path']} ({report['algo']}, {report['policy_sharing']} "
                     f"policy) on {report['env']} {report['env_options'] or ''}, {report['episodes']} episodes "
                     f"{'deterministic' if report['deterministic'] else 'sampled'}, seed {report['seed']}")
        lines += _table(report["analysis"], "fixed ids (agent i plays slot i)")
    if command in ("permute", "policy"):
        attribution = report["attribution"]
        lines += _table(attribution["by_id"], "ids shuffled per episode, returns by agent id")
        lines += _table(attribution["by_slot"], "ids shuffled per episode, returns by physical slot")
        lines.append(f"  attribution: {attribution['evidence']}")
    if command == "runs":
        lines.append(f"hmasd-audit runs: {report['seeds']} run(s), mean of Agents/<i>/Return over the last "
                     f"{report['last_fraction']:.0%} of training")
        for run in report["runs"]:
            values = ", ".join(f"{v:.4g}" for v in run["late_mean_return"])
            lines.append(f"  {run['run']} (seed {run['seed']}, {run['points']} points): {values}")
        lines.append("  agent mean over seeds [95% CI]: " + ", ".join(
            f"{i}: {m:.4g} [{lo:.4g}, {hi:.4g}]"
            for i, (m, lo, hi) in enumerate(zip(report["mean_return"], report["ci95_low"], report["ci95_high"]))))
        if "kendalls_w" in report:
            w = report["kendalls_w"]
            lines.append(f"  Kendall's W = {w['W']:.3f}, p = {w['p_value']:.3g} ({w['p_method']}), "
                         f"chi-square p = {w['p_value_chi2']:.3g}; mean ranks (higher = better) "
                         + ", ".join(f"{r:.2f}" for r in w["mean_ranks"]))
            p = report["seeds_as_blocks"]["permutation_test"]["p_value"]
            lines.append(f"  equal means with seeds as blocks, permutation test: p = {p:.3g}")
    if command == "pipeline":
        lines.append(f"hmasd-audit pipeline: {report['run']} ({report['agents']} agents, policy_sharing = "
                     f"{report['policy_sharing']})")
        lines += [f"  {d['text']}" for d in report["differences"]] or ["  no differences"]
    verdict = report["verdict"]
    lines.append(f"verdict: {verdict.upper()}"
                 + (f" at alpha = {report['alpha']:g}" if "alpha" in report else "")
                 + f": {report['evidence']}")
    for name in ("json", "plot"):
        if report.get("files", {}).get(name):
            lines.append(f"{name}: {report['files'][name]}")
    if report.get("files", {}).get("plot_note"):
        lines.append(f"plot: {report['files']['plot_note']}")
    return "\n".join(lines) + "\n"


def _bar_panels(top: Any, bottom: Any, result: dict[str, Any], title: str) -> None:
    """Mean returns (top) and advantages over the episode mean (bottom, paired: the sensitive view), 95% CIs."""
    k = result["agents"]
    colors = ["tab:green" if i == result["favoured"] else "tab:red" if i == result["least_favoured"] else "tab:blue"
              for i in range(k)]
    for ax, key, ci, label in ((top, "mean_return", "ci95", "mean return"),
                               (bottom, "advantage", "advantage_ci95", "advantage over the mean")):
        value, low, high = (np.array(result[name]) for name in (key, f"{ci}_low", f"{ci}_high"))
        ax.bar(range(k), value, yerr=np.array([value - low, high - value]), capsize=4, color=colors)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(k))
        ax.set_xlabel(result["unit"])
        ax.set_ylabel(f"{label} (95% CI)")
    top.set_title(f"{title}\np = {result['permutation_test']['p_value']:.3g}: {result['verdict']}", fontsize=9)


def plot(report: dict[str, Any], path: Path) -> None:
    """Bar charts of the per-agent means with 95% CIs (env / permute / policy) or a box plot (runs)."""
    from matplotlib.figure import Figure

    command = report["command"]
    if command == "runs":
        scores = np.array([run["late_mean_return"] for run in report["runs"]])
        fig = Figure(figsize=(1.2 * scores.shape[1] + 3, 4))
        ax = fig.subplots()
        ax.boxplot([scores[:, i] for i in range(scores.shape[1])], positions=range(scores.shape[1]))
        jitter = np.random.default_rng(0).uniform(-0.08, 0.08, size=scores.shape)
        for i in range(scores.shape[1]):
            ax.scatter(i + jitter[:, i], scores[:, i], s=12, color="tab:blue", zorder=3)
        ax.set_xticks(range(scores.shape[1]))
        ax.set_xlabel("agent")
        ax.set_ylabel(f"mean return, last {report['last_fraction']:.0%} of training")
        w = report.get("kendalls_w")
        ax.set_title(f"{report['seeds']} seeds" + (f", Kendall's W = {w['W']:.2f} (p = {w['p_value']:.3g})" if w
                                                   else ""), fontsize=9)
    else:
        panels = []
        if command in ("env", "policy"):
            panels.append((report["analysis"], "fixed ids" if command == "policy" else "random policy"))
        if command in ("permute", "policy"):
            panels += [(report["attribution"]["by_id"], "shuffled ids, by id"),
                       (report["attribution"]["by_slot"], "shuffled ids, by slot")]
        fig = Figure(figsize=(4 * len(panels), 7))
        axes = np.asarray(fig.subplots(2, len(panels), squeeze=False))
        for column, (result, title) in enumerate(panels):
            _bar_panels(axes[0, column], axes[1, column], result, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_outputs(report: dict[str, Any], out: Path, make_plot: bool = True) -> None:
    """Writes ``audit_<command>.json`` (and ``.png``) into ``out`` and records their paths in ``report["files"]``."""
    out.mkdir(parents=True, exist_ok=True)
    command = report["command"]
    files: dict[str, str | None] = {"json": str(out / f"audit_{command}.json"), "plot": None}
    report["files"] = files
    if make_plot and command != "pipeline":
        try:
            plot(report, out / f"audit_{command}.png")
            files["plot"] = str(out / f"audit_{command}.png")
        except ImportError:
            files["plot_note"] = "matplotlib is not installed, no plot (pip install hmasd[train])"
    Path(files["json"]).write_text(json.dumps(report, indent=2, default=json_default) + "\n")


# ---- command line ------------------------------------------------------------------------------------------------


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    try:
        return parse_pairs(pairs, "--set")
    except ValueError as error:
        raise AuditError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--alpha", type=float, default=0.01, help="significance level of the verdict")
    common.add_argument("--seed", type=int, default=0, help="seed of the episodes and of the permutation draws")
    common.add_argument("--n-perm", type=int, default=2000, help="Monte Carlo permutations of the tests")
    common.add_argument("--out", default=".", help="folder for audit_<command>.json and the plot")
    common.add_argument("--no-plot", action="store_true", help="skip the PNG")
    rollout = argparse.ArgumentParser(add_help=False)
    rollout.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="env option, e.g. --set tie_break=index --set grid_size=4")
    p = argparse.ArgumentParser(prog="hmasd-audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = argparse.ArgumentDefaultsHelpFormatter
    for name, text in (("env", "random policy on an env: are its agents treated alike?"),
                       ("permute", "random policy with agent ids shuffled per episode: id or physical slot?")):
        s = sub.add_parser(name, parents=[common, rollout], help=text, description=text, formatter_class=defaults)
        s.add_argument("--env", default="stag_hunt", help="a registered env")
        s.add_argument("--episodes", type=int, default=5000)
        s.add_argument("--num-threads", type=int, default=1, help="native env threads")
    s = sub.add_parser("policy", parents=[common, rollout], formatter_class=defaults,
                       help="a trained checkpoint, with fixed and with shuffled agent ids",
                       description="a trained checkpoint (shared or independent), with fixed and shuffled ids; "
                                   "--set overrides the checkpoint's env options")
    s.add_argument("--model-path", required=True, help="checkpoint file (hmasd-train's checkpoints/*.pt)")
    s.add_argument("--episodes", type=int, default=1000)
    s.add_argument("--deterministic", action="store_true", help="argmax actions instead of sampling")
    s = sub.add_parser("runs", parents=[common], formatter_class=defaults,
                       help="run folders of several seeds: is the agent ordering systematic?",
                       description="run folders of several seeds: late per-agent returns, box plot, Kendall's W")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="hmasd-train run folders")
    s.add_argument("--last-fraction", type=float, default=0.2, help="tail of training (by env steps) to average")
    s = sub.add_parser("pipeline", parents=[common], formatter_class=defaults,
                       help="a run's agents.json: equal configs, update and sample counts?",
                       description="compares every agent of <DIR>/agents.json with agent 0 and names the first "
                                   "difference")
    s.add_argument("dir", metavar="DIR", help="an hmasd-train run folder")
    return p


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the parsed sub-command and returns its report (without writing anything)."""
    if not 0 < args.alpha < 1:
        raise AuditError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.seed < 0:
        raise AuditError(f"--seed must be >= 0, got {args.seed}")
    if args.n_perm < 1:
        raise AuditError(f"--n-perm must be >= 1, got {args.n_perm}")
    if args.command in ("env", "permute", "policy") and args.episodes < 2:
        raise AuditError(f"--episodes must be >= 2, got {args.episodes}")
    if args.command in ("env", "permute"):
        audit = audit_env if args.command == "env" else audit_permute
        return audit(args.env, args.episodes, args.seed, parse_options(args.set), args.alpha, args.n_perm,
                     args.num_threads)
    if args.command == "policy":
        return audit_policy(args.model_path, args.episodes, args.seed, parse_options(args.set), args.alpha,
                            args.n_perm, args.deterministic)
    if args.command == "runs":
        return audit_runs(args.dirs, args.alpha, args.n_perm, args.seed, args.last_fraction)
    return audit_pipeline(args.dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hmasd-audit``; returns 0 (symmetric / inconclusive), 1 (asymmetric) or 2 (error)."""
    args = parser().parse_args(argv)
    try:
        report = run_command(args)
        write_outputs(report, Path(args.out), make_plot=not args.no_plot)
    except (AuditError, OSError) as error:
        sys.stderr.write(f"hmasd-audit {args.command}: error: {error}\n")
        return EXIT_ERROR
    sys.stdout.write(render(report))
    return EXIT_ASYMMETRIC if report["verdict"] == "asymmetric" else EXIT_SYMMETRIC


if __name__ == "__main__":
    sys.exit(main())
