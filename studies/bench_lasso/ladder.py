"""The lasso at the papers' small penalties: an alpha ladder and a warm-started path.

    python studies/bench_lasso/ladder.py                 # digits-fc0, T = 1000, d = 32,768
    python studies/bench_lasso/ladder.py --quick         # T = 300, a smoke run

The problem is the recorded digits layer of ``run.py`` (MLP 64-512-512-10, first
layer, ``X = (Δθ)²``), on the raw scale divided by one global factor (the RMS of
all entries), with an intercept, as the causal rules fit it.

* **Ladder**: ``alpha = r * alpha_max`` for ``r`` in 1e-1, 1e-2, 1e-3, 1e-4; each
  solver (skglm, celer, ours) runs as in ``run.py`` (a fresh forked child after an
  untimed tiny fit, a time budget, the tol ladder until the independent float64
  certificate shows ``gap / (||yc||^2 / n) <= target``, 1e-8 by default).
* **Path**: 50 alphas log-spaced from ``alpha_max`` to ``1e-3 alpha_max``, each
  solver warm-started from the previous solution (ours: ``lasso_path``; skglm and
  celer: their ``Lasso(warm_start=True)`` refitted down the grid); the path is
  certified when every point is, and the time is that of the whole path.

Ours is timed after one untimed tiny fit too, so numba's compilation (cached on
disk after the first run ever) is not in the timings; ``--compile-time`` reports it
in a fresh process with an empty cache.  Writes ``results-ladder-cpu[-quick].json``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import certify  # noqa: E402
import problems  # noqa: E402
import run as bench  # noqa: E402
import solvers  # noqa: E402

RATIOS = (1e-1, 1e-2, 1e-3, 1e-4)
PATH_TOLS = (1e-7, 1e-9, 1e-11)
LADDER = {name: solvers.CPU_SOLVERS[name] for name in ("skglm", "celer", "granger_prune[numpy]")}


def global_scale(X):
    """``X`` divided in place by the RMS of all its entries (one factor: the raw scale's units)."""
    X /= np.sqrt(np.mean(X * X))
    return X


def path_ours(X, y, alphas, tol):
    from granger_prune.lasso import lasso_path

    path = lasso_path(X, y, alphas=alphas, tol=tol, max_iter=10_000)
    return path.coefs.toarray().T, dict(passes=int(np.sum(path.n_passes)))


def _path_warm(make):
    def fit(X, y, alphas, tol):
        model, coefs = make(tol), []
        for alpha in alphas:
            model.set_params(alpha=alpha)
            coefs.append(np.asarray(model.fit(X, y).coef_, dtype=np.float64).copy())
        return np.array(coefs), dict(passes=None)
    return fit


def _celer(tol):
    from celer import Lasso
    return Lasso(alpha=1.0, tol=tol, fit_intercept=True, max_iter=1000, warm_start=True)


def _skglm(tol):
    from skglm import Lasso
    return Lasso(alpha=1.0, tol=tol, fit_intercept=True, max_iter=1000, warm_start=True)


PATHS = {"skglm": _path_warm(_skglm), "celer": _path_warm(_celer), "granger_prune[numpy]": path_ours}


def bench_path(label, fn, X, y, alphas, target, budget):
    """The whole path at decreasing tol until every point is certified; one result row."""
    attempts = []
    for tol in PATH_TOLS:
        status, seconds, coefs, info = bench.run_with_budget(
            lambda X, y, _alpha, tol: fn(X, y, alphas, tol), X, y, None, tol, budget)
        if status != "ok":
            attempts.append(dict(tol=tol, status=status, seconds=seconds))
            break
        gaps = [certify.relative_gap(X, y, w, a)[0] for w, a in zip(coefs, alphas)]
        attempts.append(dict(tol=tol, status="ok", seconds=seconds, max_rel_gap=max(gaps)))
        if max(gaps) <= target:
            objectives = [certify.relative_gap(X, y, w, a)[1] for w, a in zip(coefs, alphas)]
            return dict(solver=label, status="certified", seconds=seconds, tol=tol, max_rel_gap=max(gaps),
                        objectives=objectives, passes=(info or {}).get("passes"),
                        support_last=int(np.count_nonzero(coefs[-1])), attempts=attempts)
    last = attempts[-1]
    return dict(solver=label, status=last["status"] if last["status"] != "ok" else "not certified",
                seconds=last["seconds"], tol=last["tol"], max_rel_gap=last.get("max_rel_gap"),
                objectives=None, passes=None, support_last=None, attempts=attempts)


def compile_seconds():
    """Seconds of the first fit in a fresh process with an empty numba cache (the JIT compilation)."""
    code = ("import time, numpy as np; t = time.perf_counter(); from granger_prune.lasso import CausalLasso; "
            "r = np.random.default_rng(0); X = r.random((40, 60)); "
            "CausalLasso(alpha=1e-3).fit(X, X[:, 0]); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        first = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout)
        cached = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    return first, cached


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--target", type=float, default=1e-8)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--no-path", action="store_true")
    parser.add_argument("--compile-time", action="store_true")
    parser.add_argument("--solver", action="append", choices=tuple(LADDER),
                        help="run only these solvers (repeatable; default all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n_samples = 300 if args.quick else 1000
    started = time.time()
    X, y = problems.digits("fc0", n_samples=n_samples, scale=None)
    X = global_scale(X)
    a_max = bench.alpha_max(X, y)
    available = {k: v for k, v in LADDER.items() if solvers.installed(v[1]) and k in (args.solver or LADDER)}
    bench.warm_up(available)
    rows = []
    for ratio in RATIOS:
        for label, (fn, _) in available.items():
            row = bench.bench_solver(label, fn, X, y, ratio * a_max, args.target, args.budget,
                                     bench.run_with_budget, np)
            row.update(kind="ladder", alpha_ratio=ratio)
            rows.append(row)
            print(f"r={ratio:.0e} {label:22s} {row['status']:13s} {row['seconds']:8.2f} s tol={row['tol']:.0e} "
                  f"support={row['support']} passes={row['passes']}", flush=True)
    if not args.no_path:
        alphas = a_max * np.logspace(0, -3, 50)
        for label, fn in PATHS.items():
            if label in available:
                row = bench_path(label, fn, X, y, alphas, args.target, args.budget)
                row.update(kind="path", n_alphas=50)
                rows.append(row)
                print(f"path {label:22s} {row['status']:13s} {row['seconds']:8.2f} s tol={row['tol']:.0e} "
                      f"max gap={row['max_rel_gap']}", flush=True)
    meta = dict(problem="digits-fc0", n_samples=n_samples, n_features=X.shape[1], scale="global",
                alpha_max=a_max, target=args.target, budget_s=args.budget, cpu_count=os.cpu_count(),
                python=platform.python_version(), numpy=np.__version__, wall_seconds=time.time() - started,
                **bench._provenance())
    if args.compile_time:
        meta["numba_first_fit_s"], meta["numba_cached_fit_s"] = compile_seconds()
    out = args.out or HERE / f"results-ladder-cpu{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(dict(meta=meta, results=rows), indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
