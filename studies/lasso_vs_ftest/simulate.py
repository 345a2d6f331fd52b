"""Planted-truth simulation: lasso selection against F-test selection (issue part a).

    python studies/lasso_vs_ftest/simulate.py               # 200 seeds, every scenario (about 13 min on 2 busy cores)
    python studies/lasso_vs_ftest/simulate.py --seeds 20    # the issue's minimum, 1 minute
    python studies/lasso_vs_ftest/simulate.py --quick       # < 1 min smoke run (temp folder)

A Granger design shaped like an SGD trajectory, with known causal parameters.
For ``T`` steps and ``d`` parameters the step of parameter ``k`` at step ``t`` is

    Δθ_k^t = base · σ_k · f_t · z_k^t,      σ_k = exp(scale_sd · N(0, 1))

(log-normal per-parameter scales, so the features span orders of magnitude as
squared parameter changes do: with ``scale_sd = 1`` the middle 95 % of the
``σ_k²`` span a factor of about 2,500; ``z`` standard Gaussian, white or AR(1)
in time; ``f_t`` a common step-size factor, 1 unless the scenario has one), the
features are ``x_k^t = (Δθ_k^t)²`` (about 1e-8, the raw scale of the papers)
and the loss change is

    y^t = c + Σ_{k ∈ S} γ_k x_k^t + ε^t,      u_k ~ U(0.5, 1.5)
    truth "equal_share":  γ_k = -u_k / (η σ_k²)   (each causal term has the same scale)
    truth "taylor":       γ_k = -u_k / η          (the Taylor model's -1/η; a causal
                                                   term's variance grows as σ_k⁴)

for a random causal set ``S`` of ``s`` parameters; ``γ_k < 0``: larger steps
lower the loss.  The noise ``ε`` (white or AR(1)) has the variance that makes
the causal part explain the share ``signal_share`` of the variance of ``y`` in
the population of the independent scenario, so every scenario of a seed has the
same noise level.  Every scenario of one seed shares the scales, the causal set
and the ``u_k`` (common random numbers); the scenarios (``SCENARIOS``) differ
only in the truth and in how the time series are drawn:

* ``independent``: white ``z`` and ``ε``, no factor (equal-share truth);
* ``independent_taylor``: the same with the Taylor truth (``y`` is then dominated
  by the few causal parameters with the largest steps, hence heavy-tailed);
* ``ar_noise_0.5``, ``ar_noise_0.8``: ``z`` and ``ε`` both AR(1) with φ = 0.5 or
  0.8 (momentum makes steps serially correlated);
* ``ar_noise_0.8_white_steps``: AR(1) noise with φ = 0.8 but white steps;
* ``shared_factor``: ``f_t = exp(0.5 a_t)``, ``a_t`` AR(1) with φ = 0.9, common
  to all parameters (a learning-rate or gradient-norm factor), so every
  feature, causal or not, co-moves with ``y``.
* ``lr_step_decay``, ``lr_cosine``: ``f_t`` a learning-rate schedule (``SCHEDULES``):
  divided by 10 at a third and at two thirds of the steps, or a cosine decay from
  1 to 0.01;
* ``momentum``: ``z`` AR(1) with φ = 0.9 (SGD with momentum 0.9 sums the
  gradients so), white noise.

Methods (each selects a set of parameters; FDR = V / max(R, 1), power = TP / s):

* ``ftest_bh`` / ``ftest_by`` / ``ftest_holm``: per-parameter nested F-test of
  ``y ~ 1`` against ``y ~ 1 + x_k`` (:func:`granger_prune.stats.nested_f_tests`),
  then BH / BY at FDR ``q`` or Holm at FWER ``q``.
* ``ftest_bh_ctrl``: the same with the restricted model ``y ~ 1 + m`` where
  ``m^t = mean_k x_k^t / mean_t x_k^t`` is the trajectory's average relative
  squared step (a proxy for a shared step-size factor a user can compute).
* ``lasso_matched``: the lasso (raw scale, intercept) at the ``alpha`` giving as
  many non-zero coefficients as ``ftest_bh`` discovered (capped at ``T // 5``;
  :func:`granger_prune.lasso.alpha_for_support`).
* ``lasso_matched_std``: the same with standardised columns (the penalty on
  the coefficients of ``X / std(X)``), which ranks features by correlation as
  the F-test does; the package's default is the raw scale (DESIGN §2 "Scale").
* ``lasso_0.1``, ``lasso_0.02``: the lasso at ``0.1`` and ``0.02 · alpha_max``.
* ``split_marginal``, ``split_joint``: sample splitting.  A standardised lasso
  on the first half of the steps keeps ``screen_k`` candidates; on the second half each
  candidate gets an F-test, marginal (``y ~ 1`` vs ``y ~ 1 + x_k``) or joint
  (``y ~ 1 + other candidates`` vs ``... + x_k``), then BH at ``q`` over the
  candidates.

* ``hac_bh``, ``prewhiten_bh``: the same tests with a Newey–West covariance
  (the automatic Newey–West 1994 lag per test;
  :func:`granger_prune.stats.hac_f_tests`) or after an AR(p) filter chosen by
  BIC on the restricted residuals (:func:`granger_prune.stats.prewhitened_f_tests`),
  then BH.
* ``factor_bh``, ``factor_hac_bh``, ``factor_prewhiten_bh``: the restricted
  model ``y ~ 1 + F`` with ``F`` the principal components of the standardised
  ``X`` (Bai–Ng's ``IC_p2`` count; :func:`granger_prune.stats.factors.common_factors`),
  with the classical, HAC or prewhitened test, then BH: the conditional null
  "nothing beyond the common factors".
* ``scale_bh``, ``scale_prewhiten_bh``: the multiplicative factor adjustment
  (``factors="scale"`` of :func:`granger_prune.stats.granger_tests`): the common
  step scale ``m_t = mean_k x_tk / mean_t x_tk`` joins the restricted model and
  the rows are weighted by the restricted errors' standard deviation
  ``k √(r + (m_t / m̄)²)`` (Gaussian ML, iterated feasible GLS;
  :mod:`granger_prune.stats.step_scale`), then the classical or prewhitened test
  and BH.
* ``stability``: stability selection (complementary pairs of half-samples of
  contiguous blocks, ``π = 0.75``, ``q`` set for an expected-false-selection
  bound of 1; :func:`granger_prune.selection.stability_selection`); its rows
  report the bound (``expected_false_bound``) beside the realised ``V``.

``jaccard`` is the overlap of each method's selection with ``ftest_bh``'s
(NaN when both are empty).  ``null_rej_0.01`` / ``_0.001`` / ``_0.0001`` are
the fractions of non-causal parameters with an unadjusted p-value at or below
the level (the size of the per-parameter test; F-test rows only; BH's cut-off
here is about ``q R / d``, a few times 1e-4).  ``oracle_rej_*`` (``ftest_bh``
rows) are the same for the tests of the non-causal parameters conditional on
the true causal set (restricted model ``y ~ 1 + X_S``): with white Gaussian
noise these p-values are exact, so they separate a miscalibrated test from a
marginal test whose error term (the other causal terms) is not Gaussian.
``y_excess_kurtosis`` describes the seed's ``y``.

Writes ``simulation.csv`` (one row per scenario, seed and method),
``simulation_summary.csv`` (mean, std and standard error over seeds),
``simulation.png`` and ``simulation_meta.json`` (package version, git SHA,
configuration, wall time) next to this file, or into ``--out``.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import granger_prune
from granger_prune.lasso import alpha_for_support, alpha_max, lasso_path
from granger_prune.selection import stability_selection
from granger_prune.stats import (adjust_pvalues, granger_tests, hac_f_tests, nested_f_tests,
                                 prewhitened_f_tests)
from granger_prune.stats.factors import common_factors
from granger_prune.study.runner import git_sha

HERE = Path(__file__).resolve().parent

#: How each scenario draws its data: the planted coefficients (``truth``), the
#: AR(1) coefficients of the noise and of the Gaussian step draws ``z``, and the
#: log-scale standard deviation and AR(1) coefficient of the shared step-size
#: factor ``f_t`` (``factor_sd`` 0: no factor).
SCENARIOS = {
    "independent": dict(truth="equal_share", phi_noise=0.0, phi_steps=0.0, factor_sd=0.0,
                        phi_factor=0.0),
    "independent_taylor": dict(truth="taylor", phi_noise=0.0, phi_steps=0.0, factor_sd=0.0,
                               phi_factor=0.0),
    "ar_noise_0.5": dict(truth="equal_share", phi_noise=0.5, phi_steps=0.5, factor_sd=0.0,
                         phi_factor=0.0),
    "ar_noise_0.8": dict(truth="equal_share", phi_noise=0.8, phi_steps=0.8, factor_sd=0.0,
                         phi_factor=0.0),
    "ar_noise_0.8_white_steps": dict(truth="equal_share", phi_noise=0.8, phi_steps=0.0,
                                     factor_sd=0.0, phi_factor=0.0),
    "shared_factor": dict(truth="equal_share", phi_noise=0.0, phi_steps=0.0, factor_sd=0.5,
                          phi_factor=0.9),
    "lr_step_decay": dict(truth="equal_share", phi_noise=0.0, phi_steps=0.0, factor_sd=0.0,
                          phi_factor=0.0, schedule="step"),
    "lr_cosine": dict(truth="equal_share", phi_noise=0.0, phi_steps=0.0, factor_sd=0.0,
                      phi_factor=0.0, schedule="cosine"),
    "momentum": dict(truth="equal_share", phi_noise=0.0, phi_steps=0.9, factor_sd=0.0,
                     phi_factor=0.0),
}
#: The learning-rate schedules of the schedule scenarios, as a multiplier of every step
#: (t in [0, 1)): a step decay by 10 at a third and two thirds of the steps, and a cosine
#: decay from 1 to 0.01.
SCHEDULES = {"step": lambda t: 10.0 ** -np.floor(3 * t),
             "cosine": lambda t: 0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * t))}

METHODS = ("ftest_bh", "ftest_by", "ftest_holm", "ftest_bh_ctrl", "lasso_matched",
           "lasso_matched_std", "lasso_0.1", "lasso_0.02", "split_marginal", "split_joint",
           "hac_bh", "prewhiten_bh", "factor_bh", "factor_hac_bh", "factor_prewhiten_bh",
           "scale_bh", "scale_prewhiten_bh", "stability")
#: The robust tests: ``(method, inference, with the common factors)``, each then BH at q.
ROBUST_TESTS = (("hac_bh", "hac", False), ("prewhiten_bh", "prewhiten", False),
                ("factor_bh", "ols", True), ("factor_hac_bh", "hac", True),
                ("factor_prewhiten_bh", "prewhiten", True))
FIXED_RATIOS = {"lasso_0.1": 0.1, "lasso_0.02": 0.02}
NULL_LEVELS = (0.01, 0.001, 0.0001)


def ar1(rng, n_steps, shape, phi):
    """Stationary AR(1) series with unit marginal variance, shape ``(n_steps, *shape)``."""
    out = rng.standard_normal((n_steps, *shape))
    if phi:
        innovation = np.sqrt(1.0 - phi ** 2)
        for t in range(1, n_steps):
            out[t] *= innovation
            out[t] += phi * out[t - 1]
    return out


def planted_truth(seed, truth, cfg):
    """Per-seed scales ``σ``, causal set ``S``, coefficients ``γ`` and noise sd.

    The scales, the causal set and the factors ``u`` depend on the seed only
    (every scenario of a seed shares them).  ``truth="equal_share"``:
    ``γ_k = -u_k / (η σ_k²)``, so every causal term ``γ_k x_k`` has the same scale
    up to ``u_k``; ``truth="taylor"``: ``γ_k = -u_k / η``, so a causal term's share
    grows as ``σ_k⁴``.  The noise sd makes the causal part explain
    ``signal_share`` of the variance of ``y`` in the population of the
    independent scenario (``var (b σ z)² = 2 b⁴ σ⁴``), the same for every scenario.
    """
    rng = np.random.default_rng([seed, 0])
    scales = np.exp(cfg["scale_sd"] * rng.standard_normal(cfg["d"]))
    causal = np.sort(rng.choice(cfg["d"], cfg["s"], replace=False))
    u = rng.uniform(0.5, 1.5, cfg["s"])
    gamma = -u / cfg["eta"]
    if truth == "equal_share":
        gamma /= scales[causal] ** 2
    elif truth != "taylor":
        raise ValueError(f"truth must be 'equal_share' or 'taylor', got truth={truth!r}")
    var_signal = np.sum(gamma ** 2 * 2.0 * (cfg["base_step"] * scales[causal]) ** 4)
    noise_sd = np.sqrt(var_signal * (1.0 - cfg["signal_share"]) / cfg["signal_share"])
    return scales, causal, gamma, noise_sd


def simulate(scenario, seed, cfg):
    """``X`` (T, d), ``y`` (T,) and the causal indices for one scenario and seed."""
    spec = SCENARIOS[scenario]
    scales, causal, gamma, noise_sd = planted_truth(seed, spec["truth"], cfg)
    rng = np.random.default_rng([seed, 1 + list(SCENARIOS).index(scenario)])
    T, d = cfg["T"], cfg["d"]
    steps = ar1(rng, T, (d,), spec["phi_steps"])
    steps *= cfg["base_step"] * scales
    if spec["factor_sd"]:
        factor = np.exp(spec["factor_sd"] * ar1(rng, T, (), spec["phi_factor"]))
        steps *= factor[:, None]
    if spec.get("schedule"):
        steps *= SCHEDULES[spec["schedule"]](np.arange(T) / T)[:, None]
    X = np.square(steps, out=steps)
    y = cfg["intercept"] + X[:, causal] @ gamma + noise_sd * ar1(rng, T, (), spec["phi_noise"])
    return X, y, causal


def score(selected, truth, reference):
    """R, V, FDR, power and the Jaccard overlap with ``reference`` (boolean masks)."""
    n_sel = int(selected.sum())
    false = int((selected & ~truth).sum())
    union = int((selected | reference).sum())
    return dict(R=n_sel, V=false, FDR=false / max(n_sel, 1),
                power=int((selected & truth).sum()) / int(truth.sum()),
                jaccard=int((selected & reference).sum()) / union if union else np.nan)


def null_sizes(pvalue, truth, prefix="null_rej"):
    return {f"{prefix}_{level:g}": float(np.mean(pvalue[~truth] <= level))
            for level in NULL_LEVELS}


def lasso_support(X, y, k, tol, standardize=False):
    """Non-zero coefficients of the lasso at the ``alpha`` giving ``k`` of them.

    ``standardize``: penalise the coefficients of ``X / std(X)`` (column
    standard deviations), which ranks features by correlation like the F-test.
    """
    mask = np.zeros(X.shape[1], dtype=bool)
    if k == 0:
        return mask, 0.0, 0
    scale = X.std(axis=0) if standardize else None
    with warnings.catch_warnings():  # the support can jump past k: we record what we get
        warnings.simplefilter("ignore", granger_prune.GrangerPruneWarning)
        search = alpha_for_support(X, y, k, tol=tol, column_scale=scale)
    mask[np.flatnonzero(search.result.w)] = True
    return mask, search.alpha, search.n_fits


def split_tests(X, y, truth, cfg):
    """Sample splitting: lasso screen on the first half, F-tests on the second half."""
    half = X.shape[0] // 2
    cand, _, _ = lasso_support(X[:half], y[:half], cfg["screen_k"], cfg["tol"], standardize=True)
    cand = np.flatnonzero(cand)
    info = dict(n_candidates=int(cand.size), candidates_causal=int(truth[cand].sum()))
    if cand.size == 0:
        empty = np.zeros(X.shape[1], dtype=bool)
        return dict(split_marginal=empty, split_joint=empty), info
    X2, y2 = X[half:], y[half:]
    ones = np.ones((X2.shape[0], 1))
    marginal = nested_f_tests(y2, X2[:, cand], Z=ones).pvalue
    joint = np.ones(cand.size)
    for i, j in enumerate(cand):
        Z = np.column_stack([ones, X2[:, np.delete(cand, i)]])
        joint[i] = nested_f_tests(y2, X2[:, [j]], Z=Z).pvalue[0]
    out = {}
    for name, p in (("split_marginal", marginal), ("split_joint", joint)):
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[cand[adjust_pvalues(p, alpha=cfg["q"], method="fdr_bh")[0]]] = True
        out[name] = mask
    return out, info


def run_one(scenario, seed, cfg):
    """Rows (one per method) for one scenario and seed."""
    start = time.perf_counter()
    X, y, causal = simulate(scenario, seed, cfg)
    T, d, q = cfg["T"], cfg["d"], cfg["q"]
    truth = np.zeros(d, dtype=bool)
    truth[causal] = True
    ones = np.ones((T, 1))
    selections, extra = {}, {m: {} for m in METHODS}
    centred = (y - y.mean()) / y.std()
    kurtosis = float(np.mean(centred ** 4) - 3.0)

    ftest = nested_f_tests(y, X, Z=ones)
    for method, how in (("ftest_bh", "fdr_bh"), ("ftest_by", "fdr_by"), ("ftest_holm", "holm")):
        selections[method] = adjust_pvalues(ftest.pvalue, alpha=q, method=how)[0]
        extra[method] = dict(null_sizes(ftest.pvalue, truth), durbin_watson=ftest.durbin_watson)
    # Diagnostic: the null tests conditional on the true causal set (y | X is then the
    # Gaussian noise alone, so with white noise these p-values are exact).
    oracle = nested_f_tests(y, X[:, ~truth], Z=np.column_stack([ones, X[:, truth]])).pvalue
    extra["ftest_bh"].update(null_sizes(oracle, np.zeros(oracle.size, dtype=bool), "oracle_rej"))

    control = np.column_stack([ones, (X / X.mean(axis=0)).mean(axis=1)])
    ftest_ctrl = nested_f_tests(y, X, Z=control)
    selections["ftest_bh_ctrl"] = adjust_pvalues(ftest_ctrl.pvalue, alpha=q, method="fdr_bh")[0]
    extra["ftest_bh_ctrl"] = dict(null_sizes(ftest_ctrl.pvalue, truth),
                                  durbin_watson=ftest_ctrl.durbin_watson)

    a_max = alpha_max(X, y)
    k = min(int(selections["ftest_bh"].sum()), cfg["matched_cap"])
    selections["lasso_matched"], alpha, _ = lasso_support(X, y, k, cfg["tol"])
    extra["lasso_matched"] = dict(k_target=k, alpha_ratio=alpha / a_max if k else np.nan)
    selections["lasso_matched_std"], _, _ = lasso_support(X, y, k, cfg["tol"], standardize=True)
    extra["lasso_matched_std"] = dict(k_target=k)
    path = lasso_path(X, y, alphas=[r * a_max for r in FIXED_RATIOS.values()], tol=cfg["tol"])
    for i, (name, ratio) in enumerate(FIXED_RATIOS.items()):  # the ratios are decreasing
        selections[name] = path.coef(i) != 0.0
        extra[name] = dict(alpha_ratio=ratio)

    split, info = split_tests(X, y, truth, cfg)
    selections.update(split)
    for name in split:
        extra[name] = dict(info)

    found = common_factors(X, "bai_ng")
    with_factors = np.column_stack([ones, found.factors])
    for name, inference, factored in ROBUST_TESTS:
        Z = with_factors if factored else ones
        if inference == "hac":
            res = hac_f_tests(y, X, Z)
        elif inference == "prewhiten":
            res = prewhitened_f_tests(y, X, Z)
        else:
            res = nested_f_tests(y, X, Z)
        selections[name] = adjust_pvalues(res.pvalue, alpha=q, method="fdr_bh")[0]
        extra[name] = dict(null_sizes(res.pvalue, truth), durbin_watson=res.durbin_watson,
                           ljung_box_pvalue=res.ljung_box_pvalue,
                           n_factors=found.n_factors if factored else 0,
                           factor_share=found.share if factored else np.nan,
                           ar_order=np.nan if res.ar_order is None else res.ar_order,
                           hac_lags=np.nan if res.lags is None else float(np.median(res.lags)))
    for name, inference in (("scale_bh", "ols"), ("scale_prewhiten_bh", "prewhiten")):
        res = granger_tests(y, X, ones, inference=inference, factors="scale")
        selections[name] = adjust_pvalues(res.pvalue, alpha=q, method="fdr_bh")[0]
        extra[name] = dict(null_sizes(res.pvalue, truth), durbin_watson=res.durbin_watson,
                           ljung_box_pvalue=res.ljung_box_pvalue, n_factors=1,
                           factor_share=res.factor_share,
                           ar_order=np.nan if res.ar_order is None else res.ar_order)
    stable = stability_selection(X, y, threshold=cfg["stability_threshold"],
                                 max_false=cfg["stability_max_false"],
                                 n_pairs=cfg["stability_pairs"], tol=cfg["tol"], seed=seed)
    selections["stability"] = stable.selected
    extra["stability"] = dict(expected_false_bound=stable.expected_false_bound,
                              stability_q=stable.n_selected)
    seconds = time.perf_counter() - start
    rows = []
    for method in METHODS:
        row = dict(scenario=scenario, seed=seed, method=method, T=T, d=d, s=cfg["s"], q=q,
                   signal_share=cfg["signal_share"], y_excess_kurtosis=kurtosis)
        row.update(score(selections[method], truth, selections["ftest_bh"]))
        row.update(extra[method])
        row["seconds"] = seconds
        rows.append(row)
    return rows


def summarise(results):
    """Mean, std and standard error over seeds per scenario and method."""
    columns = ["R", "V", "FDR", "power", "jaccard", *(f"null_rej_{a:g}" for a in NULL_LEVELS),
               *(f"oracle_rej_{a:g}" for a in NULL_LEVELS), "y_excess_kurtosis",
               "expected_false_bound", "n_factors", "ar_order", "hac_lags"]
    results = results.reindex(columns=list(dict.fromkeys([*results.columns, *columns])))
    grouped = results.groupby(["scenario", "method"], sort=False)[columns]
    mean, std, count = grouped.mean(), grouped.std(), grouped.count()
    out = pd.DataFrame(index=mean.index)
    for column in columns:
        out[f"{column}_mean"] = mean[column]
        out[f"{column}_std"] = std[column]
    out["FDR_se"] = std["FDR"] / np.sqrt(count["FDR"])
    out["power_se"] = std["power"] / np.sqrt(count["power"])
    out["n_seeds"] = count["FDR"]
    return out.reset_index()


def plot(summary, q, path, T, d, s):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(summary["scenario"]))
    methods = list(dict.fromkeys(summary["method"]))
    width = 0.8 / len(methods)
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(3, 1, figsize=(12, 10.5), sharex=True)
    panels = (("FDR", "realised FDR (square-root scale)"), ("power", "power"),
              ("jaccard", "Jaccard with ftest_bh"))
    for ax, (column, label) in zip(axes, panels):
        for i, method in enumerate(methods):
            part = summary[summary["method"] == method].set_index("scenario").reindex(scenarios)
            x = np.arange(len(scenarios)) + (i - (len(methods) - 1) / 2) * width
            mean = part[f"{column}_mean"].to_numpy()
            err = (part[f"{column}_std"] / np.sqrt(part["n_seeds"])).to_numpy()
            ax.bar(x, mean, width, yerr=[np.minimum(err, mean), err], color=colors(i),
                   label=method, capsize=1.5, error_kw=dict(lw=0.7))
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_yscale("function", functions=(np.sqrt, np.square))
    axes[0].set_yticks([0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes[0].axhline(q, color="black", ls="--", lw=1, label=f"q = {q:g}")
    for ax in axes:
        ax.set_ylim(0, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=6, fontsize=8, loc="upper center",
               bbox_to_anchor=(0.5, 0.955))
    axes[-1].set_xticks(np.arange(len(scenarios)), scenarios)
    n_seeds = int(summary["n_seeds"].min())
    fig.suptitle(f"Planted truth (T={T}, d={d}, s={s}): mean over {n_seeds} seeds "
                 "(bars: ± standard error)")
    fig.tight_layout(rect=(0, 0, 1, 0.91))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds 0 ... SEEDS-1 (default 200)")
    parser.add_argument("--quick", action="store_true", help="a < 1 min smoke run")
    parser.add_argument("--T", type=int, default=500, help="steps (default 500)")
    parser.add_argument("--d", type=int, default=2000, help="parameters (default 2000)")
    parser.add_argument("--s", type=int, default=50, help="causal parameters (default 50)")
    parser.add_argument("--q", type=float, default=0.05, help="FDR / FWER level (default 0.05)")
    parser.add_argument("--signal-share", type=float, default=0.8,
                        help="share of var(y) the causal part explains (default 0.8)")
    parser.add_argument("--scale-sd", type=float, default=1.0,
                        help="sd of log step scales across parameters (default 1.0)")
    parser.add_argument("--screen-k", type=int, default=None,
                        help="candidates the split lasso keeps (default T // 5)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--stability-pairs", type=int, default=25,
                        help="complementary pairs of half-samples of stability selection "
                             "(default 25)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: the small solves run faster so)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: next to this script; with --quick a "
                             "temporary folder, so a smoke run never overwrites the results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.T, args.d, args.s = min(args.seeds, 3), 300, 500, 20
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="lasso_vs_ftest_quick_")) if args.quick else HERE
    cfg = dict(T=args.T, d=args.d, s=args.s, q=args.q, signal_share=args.signal_share,
               scale_sd=args.scale_sd, screen_k=args.screen_k or args.T // 5, eta=0.05,
               matched_cap=args.T // 5, base_step=1e-4, intercept=-1e-3, tol=1e-6,
               stability_threshold=0.75, stability_max_false=1.0,
               stability_pairs=args.stability_pairs)
    seeds = list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, scenario_seconds = [], {}
    with threadpool_limits(args.threads):
        for scenario in args.scenarios:
            t0 = time.perf_counter()
            for seed in seeds:
                rows.extend(run_one(scenario, seed, cfg))
            scenario_seconds[scenario] = round(time.perf_counter() - t0, 2)
            print(f"{scenario}: {len(seeds)} seeds in {scenario_seconds[scenario]:.1f} s",
                  file=sys.stderr, flush=True)
    wall = time.perf_counter() - start
    results = pd.DataFrame(rows)
    summary = summarise(results)
    results.to_csv(args.out / "simulation.csv", index=False)
    summary.to_csv(args.out / "simulation_summary.csv", index=False)
    plot(summary, args.q, args.out / "simulation.png", args.T, args.d, args.s)
    meta = dict(
        granger_prune=granger_prune.__version__, git_sha=git_sha(HERE), command=sys.argv,
        config=dict(cfg, seeds=seeds, quick=args.quick,
                    scenarios={name: SCENARIOS[name] for name in args.scenarios},
                    methods=list(METHODS), fixed_alpha_ratios=FIXED_RATIOS),
        wall_seconds=round(wall, 2), scenario_seconds=scenario_seconds, threads=args.threads,
        python=platform.python_version(), numpy=np.__version__,
        pandas=pd.__version__, machine=platform.machine(), cpu_count=os.cpu_count())
    (args.out / "simulation_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    table = summary[["scenario", "method", "R_mean", "FDR_mean", "FDR_se", "power_mean",
                     "jaccard_mean", "null_rej_0.001_mean", "null_rej_0.0001_mean"]]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(4).to_string(index=False))
    print(f"wall time {wall:.1f} s; results in {args.out}")


if __name__ == "__main__":
    main()
