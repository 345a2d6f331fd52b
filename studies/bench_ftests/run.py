"""Benchmark of the batched nested F-tests against statsmodels (see README.md).

    python studies/bench_ftests/run.py --device cpu            # T = 500, d = 1e6 (about 2 minutes)
    python studies/bench_ftests/run.py --device cpu --quick    # d = 1e5 smoke run (about 20 s)
    python studies/bench_ftests/run.py --device gpu            # CuPy: d = 1e6 and 1e7

The issue's target: at least 1e6 single-feature tests at T = 500 (float32 X)
in at most 2 s on the 2-core CPU, p-values included; on a GPU, features per
second.  Every configuration times ``nested_f_tests(y, X, Z[, groups])`` end to
end (validation, the passes over X, the F statistics and their p-values, the
results back on the host): the best of ``--repeats`` wall times after an
untimed warm-up call on a small problem.  statsmodels (``OLS(...).fit()`` and
``compare_f_test``, one regression per test) runs on a sample of the same
tests; its time per test is extrapolated to the configuration's number of
tests, and its F and p are compared with ours on those tests (the float32
columns upcast to float64), and, strictly, with ours on a float64 copy of a
subsample.  Prints a table and writes JSON next to this file.
"""

import argparse
import gc
import json
import os
import platform
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import special

from granger_prune.stats import adjust_pvalues, hac_f_tests, nested_f_tests

N_LAGS = 2  # lagged-loss columns of the k = 3 restricted design
N_PLANTED = 10  # columns y depends on
GROUP_SIZES = (2, 3, 8)  # momentum-style groups of 3; 2 and 8 for the cost's growth with the size


# --------------------------------------------------------------------------- problem


def learning_rates(n_rows):
    """Cosine learning-rate decay from 0.1 to 0.01 over the recorded steps."""
    t = np.arange(n_rows) / max(n_rows - 1, 1)
    return 0.01 + 0.09 * 0.5 * (1.0 + np.cos(np.pi * t))


def make_problem(n_samples, n_features, *, seed=0, phi=0.9, xp=np):
    """A trajectory-shaped F-test problem, generated row by row (no temporary the size of X).

    ``X[t, j] = (lr_t * s_j * g[t, j])**2`` in float32: ``g`` an AR(1) process in
    time per column (``phi``), ``s_j`` log-normal column scales, ``lr_t`` a
    cosine learning-rate decay shared by all columns (so columns trend
    together, as squared parameter steps do).  ``y = 1 + sum_p b_p z_p + u``
    on ``N_PLANTED`` standardised columns ``z_p`` with ``|b_p| = 0.3`` and AR(1)
    noise ``u`` (0.3, unit innovations), float64.  ``N_LAGS`` extra leading
    rows give the lagged responses of the k = 3 design.

    Returns
    -------
    dict with ``X`` (T, d) float32 (a view of a (T + N_LAGS, d) array), ``y`` (T,),
    ``Z1`` (T, 1) ones, ``Z3`` (T, 3) ``[1, y_{t-1}, y_{t-2}]`` (all on ``xp``),
    ``planted`` (host int64) and ``seconds`` (generation time).
    """
    start = time.perf_counter()
    host = np.random.default_rng(seed)
    rng = xp.random.default_rng(seed)
    n_rows = n_samples + N_LAGS
    lr = learning_rates(n_rows)
    scale = xp.exp(rng.standard_normal(n_features, dtype=xp.float32))
    innovation = float(np.sqrt(1.0 - phi ** 2))
    X_full = xp.empty((n_rows, n_features), dtype=xp.float32)
    g = rng.standard_normal(n_features, dtype=xp.float32)
    for t in range(n_rows):
        g *= phi
        g += innovation * rng.standard_normal(n_features, dtype=xp.float32)
        row = X_full[t]
        xp.multiply(g, scale, out=row)
        row *= float(lr[t])
        xp.multiply(row, row, out=row)

    planted = np.sort(host.choice(n_features, N_PLANTED, replace=False)).astype(np.int64)
    Xp = xp.take(X_full, xp.asarray(planted), axis=1).astype(xp.float64)
    Zp = (Xp - Xp.mean(axis=0)) / Xp.std(axis=0)
    b = 0.3 * host.choice([-1.0, 1.0], N_PLANTED)
    eps = host.standard_normal(n_rows)
    u = np.zeros(n_rows)
    for t in range(n_rows):
        u[t] = 0.3 * (u[t - 1] if t else 0.0) + eps[t]
    y_full = 1.0 + Zp @ xp.asarray(b) + xp.asarray(u)

    y = y_full[N_LAGS:]
    ones = xp.ones((n_samples, 1))
    lags = [y_full[N_LAGS - lag:n_rows - lag][:, None] for lag in range(1, N_LAGS + 1)]
    Z3 = xp.concatenate([ones] + lags, axis=1)
    return dict(X=X_full[N_LAGS:], y=y, Z1=ones, Z3=Z3, planted=planted,
                seconds=time.perf_counter() - start)


#: How each configuration tests: ``(our function's keyword arguments, statsmodels' kind)``.
INFERENCES = {"ols": ("ols", {}), "hac": ("hac", {"maxlags": "nw94"}),
              "hac5": ("hac", {"maxlags": "rule_of_thumb"})}


def configurations():
    """``(name, Z key, group size, inference)`` rows; a group row of size m uses the first
    ``d - d % m`` columns; ``inference`` keys :data:`INFERENCES`."""
    return [("features, Z = [1]", "Z1", 1, "ols"),
            ("features, Z = [1, y(t-1), y(t-2)]", "Z3", 1, "ols"),
            *[(f"groups of {m}, Z = [1]", "Z1", m, "ols") for m in GROUP_SIZES],
            ("HAC (nw94), features, Z = [1]", "Z1", 1, "hac"),
            ("HAC (L = 5), features, Z = [1]", "Z1", 1, "hac5"),
            ("HAC (nw94), groups of 3, Z = [1]", "Z1", 3, "hac")]


def run_tests(inference, y, X, Z, groups=None):
    """Our tests of a configuration's kind."""
    kind, options = INFERENCES[inference]
    if kind == "hac":
        return hac_f_tests(y, X, Z, groups=groups, **options)
    return nested_f_tests(y, X, Z, groups=groups)


# --------------------------------------------------------------------------- timing


def best_time(fn, sync, repeats):
    """Best and all wall times of ``fn()`` (synchronised before and after); its last result."""
    times, out = [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times), times, out


def warm_up(xp, seed):
    """Untimed calls on a small problem: imports, thread pools and LAPACK paths once."""
    p = make_problem(500, 3 * 700, seed=seed + 1, xp=xp)
    nested_f_tests(p["y"], p["X"], p["Z1"])
    nested_f_tests(p["y"], p["X"], p["Z3"])
    for m in GROUP_SIZES:
        n = p["X"].shape[1] - p["X"].shape[1] % m
        nested_f_tests(p["y"], p["X"][:, :n], p["Z1"], groups=xp.asarray(np.arange(n) // m))
    for inference in ("hac", "hac5"):  # the compiled kernels, C and strided layouts
        run_tests(inference, p["y"], p["X"], p["Z1"])
        run_tests(inference, p["y"], p["X"][:, :2097], p["Z1"], groups=xp.asarray(np.arange(2097) // 3))


def peak_extra_gb(fn):
    """Peak host memory allocated during one ``fn()`` call (tracemalloc, NumPy included), GB."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e9
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- statsmodels


def reference_tests(n_tests, group_size, planted, degenerate, n_ref, seed):
    """The tests statsmodels runs: those holding a planted column, up to 20 of our degenerate
    ones (NaN), then random ones; in that order, so the strict subsample takes them first."""
    rng = np.random.default_rng(seed + 2)
    planted_tests = np.unique(planted // group_size)
    first = np.unique(np.concatenate([planted_tests[planted_tests < n_tests], degenerate[:20]]))
    others = rng.permutation(n_tests)[:n_ref + len(first)]
    others = others[~np.isin(others, first)][:max(n_ref - len(first), 0)]
    return np.concatenate([first, others]).astype(np.int64)


def test_columns(tests, group_size):
    """Column indices of ``tests`` (feature or group numbers), shape (len(tests), group_size)."""
    return tests[:, None] * group_size + np.arange(group_size)[None, :]


def statsmodels_tests(y, Z, X_cols, lags=None):
    """F, p and seconds per test of ``OLS(y, [Z, X_g]).fit().compare_f_test(OLS(y, Z).fit())``.

    ``X_cols`` has shape (n_tests, T, m), float64.  The restricted model is
    fitted once, outside the timed loop (statsmodels' best case).  With
    ``lags`` (one per test): ``OLS(y, [Z, X_g]).fit(cov_type="HAC", cov_kwds=
    {"maxlags": L, "use_correction": True}).f_test(R)`` on the tested
    coefficients instead.
    """
    restricted = sm.OLS(y, Z).fit()
    F = np.empty(len(X_cols))
    p = np.empty(len(X_cols))
    k = Z.shape[1]
    start = time.perf_counter()
    for i, cols in enumerate(X_cols):
        model = sm.OLS(y, np.column_stack([Z, cols]))
        if lags is None:
            F[i], p[i], _ = model.fit().compare_f_test(restricted)
        else:
            fit = model.fit(cov_type="HAC", cov_kwds={"maxlags": int(lags[i]), "use_correction": True})
            test = fit.f_test(np.eye(k + cols.shape[1])[k:])
            F[i], p[i] = float(test.fvalue), float(test.pvalue)
    return F, p, (time.perf_counter() - start) / len(X_cols)


def compare(ours, ref, kind, ours_f):
    """Differences of ``ours`` from the reference ``ref`` (statsmodels) on the tests both define.

    ``max_rel_diff_<kind>`` is ``max |ours - ref| / |ref|``; for F also
    ``max_scaled_diff_f = max |ours - ref| / max(ref, 1)`` (the relative difference
    of a nearly null F, F << 1, is dominated by rounding in either computation:
    statsmodels forms ``SSR_r - SSR_f`` by subtraction) and the reference F at the
    largest relative difference.  ``n_nan_<kind>`` counts tests where ours is NaN
    (degenerate: ``ours_f``, our F, is NaN and ours p is 1) and the reference is not;
    they are left out of the differences.
    """
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    tested = np.isfinite(np.asarray(ours_f, dtype=np.float64))
    ok = np.isfinite(ref) & tested & np.isfinite(ours) & (ref != 0)
    out = {f"n_nan_{kind}": int(np.sum(np.isfinite(ref) & ~tested))}
    if not ok.any():
        return {**out, f"max_rel_diff_{kind}": None}
    diff = np.abs(ours[ok] - ref[ok])
    rel = diff / np.abs(ref[ok])
    out[f"max_rel_diff_{kind}"] = float(rel.max())
    if kind.startswith("f"):
        out[f"max_scaled_diff_{kind}"] = float(np.max(diff / np.maximum(np.abs(ref[ok]), 1.0)))
        out[f"ref_at_max_rel_diff_{kind}"] = float(ref[ok][np.argmax(rel)])
    else:
        out[f"max_abs_diff_{kind}"] = float(diff.max())
    return out


# --------------------------------------------------------------------------- one configuration


def hac_at_lags(y, X, Z, group_size, lags):
    """``hac_f_tests`` with a given lag per test (tests of one lag at a time); a results-like
    object with ``fvalue`` and ``pvalue``."""
    from types import SimpleNamespace

    fvalue, pvalue = np.empty(len(lags)), np.empty(len(lags))
    for lag in np.unique(lags):
        tests = np.flatnonzero(lags == lag)
        cols = test_columns(tests, group_size).ravel()
        groups = None if group_size == 1 else np.arange(cols.size) // group_size
        res = hac_f_tests(y, X[:, cols], Z, groups=groups, maxlags=int(lag))
        fvalue[tests], pvalue[tests] = res.fvalue, res.pvalue
    return SimpleNamespace(fvalue=fvalue, pvalue=pvalue)


def bench_config(prob, name, z_key, group_size, inference, *, xp, sync, repeats, n_ref, n_strict,
                 seed, measure_memory):
    to_host = (lambda a: a.get()) if xp is not np else np.asarray
    X_all, y, Z = prob["X"], prob["y"], prob[z_key]
    n_samples = X_all.shape[0]
    n_cols = X_all.shape[1] - X_all.shape[1] % group_size
    X = X_all if n_cols == X_all.shape[1] else X_all[:, :n_cols]
    n_tests = n_cols // group_size
    groups = None if group_size == 1 else xp.asarray(np.arange(n_cols) // group_size)

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate tests are counted in the row
            return run_tests(inference, y, X, Z, groups)

    seconds, times, res = best_time(call, sync, repeats)
    tail_s, _, _ = best_time(
        lambda: special.fdtrc(res.df_num, res.df_denom, np.nan_to_num(res.fvalue)),
        lambda: None, repeats)
    bh_s, _, (reject, _) = best_time(lambda: adjust_pvalues(res.pvalue, method="fdr_bh"),
                                     lambda: None, repeats)
    memory = peak_extra_gb(call) if measure_memory else None

    # statsmodels on a sample of the same tests, float32 columns upcast to float64
    y_h, Z_h = to_host(y), to_host(Z)
    degenerate = np.flatnonzero(~np.isfinite(res.fvalue))
    tests = reference_tests(n_tests, group_size, prob["planted"], degenerate, n_ref, seed)
    cols = test_columns(tests, group_size)
    X_ref = to_host(xp.take(X, xp.asarray(cols.ravel()), axis=1)).astype(np.float64)  # (T, n*m)
    X_ref = X_ref.reshape(n_samples, len(tests), group_size).transpose(1, 0, 2)
    lags = None if res.lags is None else res.lags[tests]
    F_sm, p_sm, sm_per_test = statsmodels_tests(y_h, Z_h, X_ref, lags)

    # strict check: ours on a float64 copy of a subsample (planted and degenerate tests first)
    strict = np.arange(min(n_strict, len(tests)))
    X64 = np.ascontiguousarray(X_ref[strict].transpose(1, 0, 2).reshape(n_samples, -1))
    groups64 = None if group_size == 1 else xp.asarray(np.arange(X64.shape[1]) // group_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate tests are counted in the row
        if res.lags is None:
            res64 = run_tests(inference, y, xp.asarray(X64), Z, groups64)
        else:  # at the lags statsmodels was given (a float64 copy may round to other ones)
            res64 = hac_at_lags(y, xp.asarray(X64), Z, group_size, res.lags[tests][strict])
    F32, F64 = res.fvalue[tests], res64.fvalue
    checks = {**compare(F32, F_sm, "f_float32", F32),
              **compare(res.pvalue[tests], p_sm, "p_float32", F32),
              **compare(F64, F_sm[strict], "f_float64", F64),
              **compare(res64.pvalue, p_sm[strict], "p_float64", F64)}
    checks["f_float32_within_rtol_1e-6"] = bool(checks["max_rel_diff_f_float32"] is not None
                                                and checks["max_rel_diff_f_float32"] <= 1e-6
                                                and checks["n_nan_f_float32"] == 0)
    checks["f_float64_within_rtol_1e-8"] = bool(checks["max_rel_diff_f_float64"] is not None
                                                and checks["max_rel_diff_f_float64"] <= 1e-8
                                                and checks["n_nan_f_float64"] == 0)
    in_sample = np.isin(tests, degenerate)
    checks["degenerate_in_sample"] = int(in_sample.sum())
    checks["degenerate_statsmodels_min_p"] = (float(p_sm[in_sample].min()) if in_sample.any()
                                              else None)

    planted_tests = np.unique(prob["planted"] // group_size)
    planted_tests = planted_tests[planted_tests < n_tests]
    return dict(
        config=name, inference=inference, n_samples=n_samples, n_features=n_cols,
        n_restricted=Z.shape[1], group_size=group_size, n_tests=n_tests, dtype=str(X.dtype),
        x_contiguous=bool(X.flags.c_contiguous), x_gb=n_samples * n_cols * X.dtype.itemsize / 1e9,
        seconds=seconds, times=times, features_per_s=n_cols / seconds, tests_per_s=n_tests / seconds,
        meets_2s_target=(bool(seconds <= 2.0) if group_size == 1 and n_cols >= 1_000_000
                         and inference == "ols" else None),
        meets_hac_4s_target=(bool(seconds <= 4.0) if group_size == 1 and n_cols >= 1_000_000
                             and inference != "ols" else None),
        median_lags=None if res.lags is None else float(np.median(res.lags)),
        max_lags=None if res.lags is None else int(np.max(res.lags)),
        pvalue_tail_s=tail_s, bh_adjust_s=bh_s, peak_extra_gb=memory,
        durbin_watson=res.durbin_watson, n_degenerate=int(np.sum(~np.isfinite(res.fvalue))),
        n_bh_rejected=int(reject.sum()), planted_tests=planted_tests.tolist(),
        planted_bh_rejected=int(reject[planted_tests].sum()),
        statsmodels_n_tests=len(tests), statsmodels_s_per_test=sm_per_test,
        statsmodels_s_per_million_tests=sm_per_test * 1e6,
        statsmodels_extrapolated_s=sm_per_test * n_tests,
        speedup_vs_statsmodels=sm_per_test * n_tests / seconds,
        min_f_checked=float(np.min(F_sm)), max_f_checked=float(np.max(F_sm)),
        min_p_checked=float(np.min(p_sm)), **checks,
    )


# --------------------------------------------------------------------------- main


def plan(device, quick, n_samples, xp):
    """Feature counts to run, largest last; on a GPU 1e7 only when it fits."""
    if quick:
        return [100_000]
    if device == "cpu":
        return [1_000_000]
    sizes = [1_000_000]
    free, _ = xp.cuda.Device().mem_info
    if (n_samples + N_LAGS) * 10_000_000 * 4 * 1.3 < free:  # X and the generator's rows, with margin
        sizes.append(10_000_000)
    return sizes


def fits_groups(X, xp):
    """Whether the group path's copies fit on the device.

    ``nested_f_tests`` gathers the grouped columns (the size of ``X``), converts
    them to float64 (twice that) and forms the Gram matrices by ``einsum``
    (allow twice again): five times ``X`` besides ``X``.
    """
    if xp is np:
        return True
    xp.get_default_memory_pool().free_all_blocks()
    free, _ = xp.cuda.Device().mem_info
    return 5.0 * X.nbytes < free


def run(device, quick, n_samples, repeats, n_ref, n_strict, seed, measure_memory, only=()):
    if device == "gpu":
        import cupy as xp

        sync = xp.cuda.Device().synchronize
    else:
        xp, sync = np, (lambda: None)
    warm_up(xp, seed)
    rows, skipped = [], []
    for n_features in plan(device, quick, n_samples, xp):
        prob = make_problem(n_samples, n_features, seed=seed, xp=xp)
        sync()
        print(f"\nT={n_samples} d={n_features:,} float32 ({prob['X'].nbytes / 1e9:.2f} GB) "
              f"made in {prob['seconds']:.1f} s", flush=True)
        for name, z_key, group_size, inference in configurations():
            if only and not any(word in name for word in only):
                continue
            if group_size > 1 and not fits_groups(prob["X"], xp):
                skipped.append(dict(config=name, n_features=n_features, why="device memory"))
                print(f"  {name:36s} skipped: not enough device memory", flush=True)
                continue
            try:
                row = bench_config(prob, name, z_key, group_size, inference, xp=xp, sync=sync,
                                   repeats=repeats, n_ref=n_ref, n_strict=n_strict, seed=seed,
                                   measure_memory=measure_memory and xp is np)
            except Exception as exc:  # CuPy's OutOfMemoryError: record it, keep the other rows
                if type(exc).__name__ != "OutOfMemoryError":
                    raise
                xp.get_default_memory_pool().free_all_blocks()
                skipped.append(dict(config=name, n_features=n_features, why=repr(exc)))
                print(f"  {name:36s} out of device memory: {exc}", flush=True)
                continue
            row.update(device=device, generation_s=prob["seconds"])
            rows.append(row)
            print(f"  {name:36s} {row['seconds']:7.3f} s  {row['features_per_s']:.3g} features/s  "
                  f"statsmodels x{row['speedup_vs_statsmodels']:.0f}  "
                  f"dF32={_fmt(row['max_rel_diff_f_float32'])} "
                  f"dF64={_fmt(row['max_rel_diff_f_float64'])} degenerate={row['n_degenerate']}",
                  flush=True)
        del prob
        if xp is not np:
            xp.get_default_memory_pool().free_all_blocks()
    return rows, skipped


def _fmt(value):
    return "n/a" if value is None else f"{value:.1e}"


def summary_table(rows):
    table = pd.DataFrame(rows)[[
        "config", "n_features", "n_tests", "seconds", "features_per_s", "pvalue_tail_s",
        "statsmodels_s_per_million_tests", "speedup_vs_statsmodels", "max_rel_diff_f_float32",
        "max_scaled_diff_f_float32", "max_rel_diff_p_float32", "max_rel_diff_f_float64",
        "max_rel_diff_p_float64", "n_degenerate"]]
    return table.rename(columns={
        "statsmodels_s_per_million_tests": "sm_s_per_1e6", "speedup_vs_statsmodels": "x_sm",
        "max_rel_diff_f_float32": "dF_f32", "max_scaled_diff_f_float32": "dF/max(F,1)_f32",
        "max_rel_diff_p_float32": "dp_f32", "max_rel_diff_f_float64": "dF_f64",
        "max_rel_diff_p_float64": "dp_f64", "n_degenerate": "degenerate"})


def source_sha():
    """The package checkout's git SHA (``-dirty`` with uncommitted changes to tracked files)."""
    from granger_prune.study.runner import git_sha

    return git_sha(Path(__file__).resolve().parent)


def metadata(args, xp_name, sha_start):
    import granger_prune

    sha_end = source_sha()
    meta = dict(device=args.device, quick=args.quick, n_samples=args.n_samples, repeats=args.repeats,
                n_statsmodels=args.n_statsmodels, n_strict=args.n_strict, seed=args.seed,
                granger_prune=granger_prune.__version__, git_sha=sha_start,
                git_sha_changed_during_run=None if sha_end == sha_start else sha_end,
                python=platform.python_version(), numpy=np.__version__, scipy=scipy.__version__,
                statsmodels=statsmodels.__version__, pandas=pd.__version__,
                platform=platform.platform(), machine=platform.machine(),
                processor=platform.processor(), cpu_count=os.cpu_count(),
                load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    if xp_name == "cupy":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        meta.update(cupy=cupy.__version__, gpu=name.decode() if isinstance(name, bytes) else name,
                    gpu_memory_gb=cupy.cuda.Device().mem_info[1] / 1e9)
    return meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="d = 100,000 smoke run")
    parser.add_argument("--n-samples", type=int, default=500, help="T, the recorded steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the best is reported")
    parser.add_argument("--n-statsmodels", type=int, default=None,
                        help="tests statsmodels runs per configuration (default 500, quick 200)")
    parser.add_argument("--n-strict", type=int, default=200,
                        help="tests of the strict float64 comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the extra tracemalloc call that measures peak host memory")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default results-<device>[-quick].json next to this file)")
    parser.add_argument("--configs", nargs="+", default=None,
                        help="run only the configurations whose name contains one of these words "
                             "(e.g. HAC)")
    args = parser.parse_args(argv)
    if args.n_statsmodels is None:
        args.n_statsmodels = 200 if args.quick else 500
    sha_start = source_sha()  # the code measured (another commit may land during the run)
    rows, skipped = run(args.device, args.quick, args.n_samples, args.repeats, args.n_statsmodels,
                        args.n_strict, args.seed, not args.no_memory, tuple(args.configs or ()))
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        if rows:
            print("\n" + summary_table(rows).to_string(index=False,
                                                        float_format=lambda v: f"{v:.3g}"))
    out = args.out or (Path(__file__).resolve().parent
                       / f"results-{args.device}{'-quick' if args.quick else ''}.json")
    meta = metadata(args, "cupy" if args.device == "gpu" else "numpy", sha_start)
    out.write_text(json.dumps(dict(meta=meta, results=rows, skipped=skipped), indent=2,
                              default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
