"""Side-by-side lasso benchmark on trajectory-shaped problems (see README.md).

    python studies/bench_lasso/run.py --device cpu            # the CPU problems
    python studies/bench_lasso/run.py --device gpu            # the GPU problems
    python studies/bench_lasso/run.py --device cpu --quick    # a 2-minute smoke run

Every solver gets the same ``X`` (unit-RMS columns), ``y`` and
``alpha = alpha_ratio * alpha_max``.  Each is run at ``tol = 1e-6`` and, if the
independent float64 certificate (``certify.py``) does not show ``gap /
(||yc||^2 / n) <= target``, again at ten times smaller ``tol``, up to three more
times; the reported time is that of the first certified run.  CPU competitors
run in a forked child with a time budget: one that runs out is reported as
``> budget`` (so ratios against it are lower bounds).  Prints a table and writes
JSON.
"""

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import certify  # noqa: E402
import problems  # noqa: E402
import solvers  # noqa: E402

TOLS = (1e-6, 1e-7, 1e-8, 1e-9)
CPU_PROBLEMS = [("synthetic", 1000, 32_768), ("digits-fc0", 1000, 32_768),
                ("synthetic", 1000, 262_144), ("digits-fc1", 1000, 262_144)]
GPU_PROBLEMS = [("synthetic", 1000, 1_000_000), ("synthetic", 5000, 1_000_000),
                ("synthetic", 1000, 10_000_000)]
QUICK_PROBLEMS = [("synthetic", 300, 8_192), ("digits-fc0", 300, 32_768)]


def make_problem(name, n_samples, n_features, xp=np, dtype=np.float64):
    if name == "synthetic":
        return problems.synthetic(n_samples, n_features, dtype=dtype, xp=xp)
    X, y = problems.digits(name.split("-")[1], n_samples=n_samples, dtype=dtype)
    assert X.shape[1] == n_features, X.shape
    return xp.ascontiguousarray(xp.asarray(X)), xp.asarray(y)


def alpha_max(X, y, xp=np):
    """``max_j |Xc_j^T yc| / n`` in float64 (written here, independent of the package)."""
    yc = xp.asarray(y, dtype=xp.float64) - float(y.mean())
    out = 0.0
    for start in range(0, X.shape[1], certify.BLOCK_COLUMNS):
        block = X[:, start:start + certify.BLOCK_COLUMNS].astype(xp.float64)
        out = max(out, float(xp.max(xp.abs((block - block.mean(axis=0)).T @ yc))))
    return out / X.shape[0]


def bandwidths(X, xp, sync, repeats=3):
    """Copy bandwidth and the package's pass ``X^T v`` bandwidth, GB/s, on the same device.

    The copy moves a quarter of ``X``'s rows into a preallocated buffer (read +
    write bytes over time), so neither allocation nor page faults are timed and
    a 40 GB design needs only 10 GB more.
    """
    from granger_prune.lasso._operator import ImplicitDesign

    v = xp.ones(X.shape[0])
    design = ImplicitDesign(X, None, None, xp)
    part = X[: max(1, X.shape[0] // 4)]
    buffer = xp.empty_like(part)

    def best(fn):
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return min(times)

    copy_s = best(lambda: xp.copyto(buffer, part))
    pass_s = best(lambda: design.rmatvec(v))
    del buffer
    return 2 * part.nbytes / copy_s / 1e9, X.nbytes / pass_s / 1e9


def _child(conn, fn, X, y, alpha, tol):
    try:
        _tiny_fit(fn)  # first-call costs in the fresh process (thread pools, caches) untimed
        start = time.perf_counter()
        coef, info = fn(X, y, alpha, tol)
        conn.send(("ok", time.perf_counter() - start, np.asarray(coef, dtype=np.float64), info))
    except Exception as exc:  # reported in the table, not raised
        conn.send(("error", 0.0, None, repr(exc)))
    conn.close()


def run_with_budget(fn, X, y, alpha, tol, budget):
    """Run ``fn`` in a forked child; ``("timeout", budget, None, None)`` when it runs out."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, fn, X, y, alpha, tol))
    process.start()
    child.close()
    if parent.poll(budget):
        out = parent.recv()
        process.join()
        return out
    process.kill()
    process.join()
    return ("timeout", budget, None, None)


def run_in_process(fn, X, y, alpha, tol, budget):
    start = time.perf_counter()
    coef, info = fn(X, y, alpha, tol)
    return ("ok", time.perf_counter() - start, solvers.as_float64(coef), info)


def bench_solver(label, fn, X, y, alpha, target, budget, runner, xp):
    """Run the tolerance ladder; return one result row."""
    attempts = []
    for tol in TOLS:
        status, seconds, coef, info = runner(fn, X, y, alpha, tol, budget)
        if status != "ok":
            attempts.append(dict(tol=tol, status=status, seconds=seconds, error=info))
            break
        gap, objective = certify.relative_gap(X, y, xp.asarray(coef), alpha, xp)
        attempts.append(dict(tol=tol, status="ok", seconds=seconds, rel_gap=gap))
        if gap <= target:
            return dict(solver=label, status="certified", seconds=seconds, tol=tol, rel_gap=gap,
                        objective=objective, support=int(np.count_nonzero(coef)),
                        passes=(info or {}).get("passes"), attempts=attempts)
    last = attempts[-1]
    return dict(solver=label, status=last["status"] if last["status"] != "ok" else "not certified",
                seconds=last["seconds"], tol=last["tol"], rel_gap=last.get("rel_gap"),
                objective=None, support=None, passes=None, attempts=attempts)


def _tiny_fit(fn):
    X, y = problems.synthetic(50, 200)
    fn(X, y, 0.1 * alpha_max(X, y), 1e-4)


def warm_up(entries):
    """One tiny fit per solver, so JIT compilation (skglm, celer) is not timed."""
    for fn, _ in entries.values():
        try:
            _tiny_fit(fn)
        except Exception:  # a broken competitor is reported by its real run
            pass


def _host_reference(X, y, alpha, target, budget):
    """scikit-learn on the GPU machine's own CPU, float64 copy of the same problem."""
    X_host = np.ascontiguousarray(X.get(), dtype=np.float64)
    y_host = y.get()
    fn = solvers.CPU_SOLVERS["scikit-learn"][0]
    row = bench_solver("scikit-learn (host CPU)", fn, X_host, y_host, alpha, target, budget,
                       run_with_budget, np)
    row["solver"] = "scikit-learn"
    return [row]


def run(device, problem_specs, alpha_ratio, target, budget, host_budget=240.0,
        max_host_features=1_000_000):
    if device == "gpu":
        import cupy as xp

        entries = dict(solvers.GPU_SOLVERS)
        dtype = np.float32
        sync = xp.cuda.Device().synchronize
        runner = run_in_process
    else:
        xp, dtype, sync, runner = np, np.float64, (lambda: None), run_with_budget
        entries = dict(solvers.CPU_SOLVERS)
    available = {k: v for k, v in entries.items() if solvers.installed(v[1])}
    missing = sorted(set(entries) - set(available))
    warm_up(available)
    rows = []
    for name, n_samples, n_features in problem_specs:
        start = time.perf_counter()
        X, y = make_problem(name, n_samples, n_features, xp=xp, dtype=dtype)
        made = time.perf_counter() - start
        alpha = alpha_ratio * alpha_max(X, y, xp)
        copy_gbs, pass_gbs = bandwidths(X, xp, sync)
        if device == "gpu" and n_features <= max_host_features:
            host_rows = _host_reference(X, y, alpha, target, host_budget)
        else:
            host_rows = []
        print(f"\n{name} T={n_samples} d={n_features} {np.dtype(dtype).name} "
              f"({X.nbytes / 1e9:.2f} GB, made in {made:.1f} s): copy {copy_gbs:.1f} GB/s, "
              f"pass X^T v {pass_gbs:.1f} GB/s ({pass_gbs / copy_gbs:.0%} of copy)", flush=True)
        problem_rows = []
        for label, (fn, _) in available.items():
            row = bench_solver(label, fn, X, y, alpha, target, budget, runner, xp)
            passes = row.get("passes")
            row.update(problem=name, n_samples=n_samples, n_features=n_features,
                       dtype=np.dtype(dtype).name, alpha=alpha, alpha_ratio=alpha_ratio,
                       x_gb=X.nbytes / 1e9, copy_gbs=copy_gbs, pass_gbs=pass_gbs,
                       effective_gbs=(X.nbytes * passes / row["seconds"] / 1e9
                                      if passes and row["status"] == "certified" else None))
            print(f"  {label:22s} {row['status']:13s} {row['seconds']:9.2f} s  tol={row['tol']:.0e} "
                  f"gap={row['rel_gap'] if row['rel_gap'] is not None else float('nan'):.1e} "
                  f"passes={passes}", flush=True)
            problem_rows.append(row)
        for row in host_rows:
            row.update(problem=name, n_samples=n_samples, n_features=n_features, dtype="float64",
                       alpha=alpha, alpha_ratio=alpha_ratio, x_gb=X.nbytes / 1e9 * 2,
                       copy_gbs=None, pass_gbs=None, effective_gbs=None)
            print(f"  {row['solver']:22s} {row['status']:13s} {row['seconds']:9.2f} s (host CPU)")
        problem_rows.extend(host_rows)
        _add_ratios(problem_rows)
        rows.extend(problem_rows)
        del X, y
    return rows, missing


def _add_ratios(rows):
    """Speed-up of every solver over scikit-learn and celer, and objective agreement."""
    by_name = {r["solver"]: r for r in rows}
    objectives = [r["objective"] for r in rows if r["objective"] is not None]
    best = min(objectives) if objectives else None
    for row in rows:
        for ref in ("scikit-learn", "celer"):
            other = by_name.get(ref)
            ratio = None
            if other is not None and row["status"] == "certified" and other["status"] in ("certified", "timeout"):
                ratio = other["seconds"] / row["seconds"]
            row[f"speedup_vs_{ref}"] = ratio
            row[f"speedup_vs_{ref}_is_lower_bound"] = bool(other and other["status"] == "timeout")
        row["objective_rel_diff"] = (None if row["objective"] is None or best is None
                                     else (row["objective"] - best) / abs(best))


def summary_table(rows):
    columns = ["problem", "n_samples", "n_features", "solver", "status", "seconds", "tol",
               "rel_gap", "passes", "effective_gbs", "speedup_vs_scikit-learn", "speedup_vs_celer",
               "objective_rel_diff", "support"]
    return pd.DataFrame(rows)[columns]


def _provenance():
    """Package version, git SHA, the solvers' library versions and the load average."""
    import importlib.metadata

    import granger_prune
    from granger_prune.study.runner import git_sha

    versions = {}
    for name in ("scipy", "scikit-learn", "skglm", "celer", "cupy-cuda13x"):
        try:
            versions[name.replace("-", "_")] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return dict(granger_prune=granger_prune.__version__,
                git_sha=git_sha(Path(__file__).resolve().parent), **versions,
                load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="small problems (smoke run)")
    parser.add_argument("--problem", type=int, action="append",
                        help="index into the device's problem list (repeatable; default all)")
    parser.add_argument("--alpha-ratio", type=float, default=0.05)
    parser.add_argument("--target", type=float, default=1e-6,
                        help="certified gap / (||yc||^2 / n) every solver must reach")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds per CPU competitor run before it is stopped")
    parser.add_argument("--host-budget", type=float, default=240.0,
                        help="seconds for scikit-learn on the host CPU in a GPU run (d <= 1e6)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default results-<device>.json)")
    args = parser.parse_args(argv)
    specs = QUICK_PROBLEMS if args.quick else (GPU_PROBLEMS if args.device == "gpu" else CPU_PROBLEMS)
    if args.problem:
        specs = [specs[i] for i in args.problem]
    rows, missing = run(args.device, specs, args.alpha_ratio, args.target, args.budget,
                        host_budget=args.host_budget)
    table = summary_table(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if missing:
        print(f"\nnot installed (not run): {', '.join(missing)}")
    suffix = ("-quick" if args.quick else "") + "".join(f"-{i}" for i in args.problem or [])
    out = args.out or Path(__file__).resolve().parent / f"results-{args.device}{suffix}.json"
    meta = dict(device=args.device, quick=args.quick, alpha_ratio=args.alpha_ratio, target=args.target,
                budget_s=args.budget, missing=missing, machine=platform.machine(),
                processor=platform.processor(), cpu_count=os.cpu_count(), python=platform.python_version(),
                numpy=np.__version__, **_provenance())
    out.write_text(json.dumps(dict(meta=meta, results=rows), indent=2, default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
