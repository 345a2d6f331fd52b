"""Kill a study with SIGKILL and start it again: does it finish with the same results?

    python studies/crash_resume/run.py --kills 20          # the small study, 20 random kills
    python studies/crash_resume/run.py --default-study     # the default study, killed at 60 %

Each run is ``python -m granger_prune.study.cli run <study> --out DIR --quiet`` in a
child process (the command a user types), with ``--set`` overrides for the small study.

* ``--kills N``: one uninterrupted reference run (its wall time ``F``, of which ``S``
  passed before its run folder appeared: imports and data), then ``N`` trials, each
  in a fresh folder: started, killed with SIGKILL at a moment drawn uniformly from
  ``(0, F - S)`` after its run folder appeared, then started again with the same
  command (unless it had finished before the kill).
  After every kill the folder is inspected: which phase was running (from its
  checkpoints), and whether it holds a ``results.csv`` (it must not, unless the
  run had finished).  Every finished ``results.csv``, ``diagnostics.csv`` and
  ``summary.csv`` is compared byte for byte with the reference's.
* ``--default-study``: the default study uninterrupted (``F``), then again, killed at
  ``0.6 F`` and started again: the second start's wall time against ``0.6 F``.

Writes ``results-kills.json`` or ``results-default.json`` next to this file.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SMALL = ["seeds=[0,1]", "sparsities=[0.5,0.9]", "model_options.hidden=[64]",
         "schedule.n_pre=3", "schedule.n_iter=2", "schedule.n_prune=1", "schedule.n_post=3",
         "sgd.batch_size=32",
         'methods=[{"name": "causal"}, {"name": "magnitude"}, {"name": "taylor"}]']
COMPARED = ("results.csv", "diagnostics.csv", "summary.csv", "comparisons.csv")


def command(out, overrides):
    args = [sys.executable, "-m", "granger_prune.study.cli", "run", "--out", str(out), "--quiet",
            "--device", "cpu"]
    for item in overrides:
        args += ["--set", item]
    return args


def run_to_end(out, overrides):
    """Start the command; return its wall seconds and the seconds until its run folder
    appeared (the start-up: imports and data; None for a folder that existed)."""
    existed = (out / "run.json").exists()
    tic = time.perf_counter()
    child = subprocess.Popen(command(out, overrides), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    appeared = None
    while child.poll() is None:
        if appeared is None and not existed and (out / "run.json").exists():
            appeared = time.perf_counter() - tic
        time.sleep(0.02)
    if child.returncode != 0:
        raise RuntimeError(f"the run into {out} failed:\n{child.stderr.read()[-3000:]}")
    return time.perf_counter() - tic, appeared


def run_and_kill(out, overrides, after, from_folder=False):
    """Start the command and SIGKILL it ``after`` seconds after its start (``from_folder``:
    after its run folder appeared); False if it finished first."""
    child = subprocess.Popen(command(out, overrides), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if from_folder:
        while child.poll() is None and not (out / "run.json").exists():
            time.sleep(0.01)
    try:
        child.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        return True


def phase_of(out, n_iter, n_seeds, cells_per_seed):
    """What was running when the run in ``out`` was killed, read from its checkpoints."""
    if not (out / "run.json").is_file():
        return "start-up"
    if json.loads((out / "run.json").read_text())["status"] == "finished":
        return "finished"
    cells = list((out / "checkpoints" / "cells").glob("*/*"))
    finished = [c for c in cells if (c / "result").is_dir()]
    rounds = [int(r.name.split("-")[1]) for c in cells if not (c / "result").is_dir()
              for r in c.glob("round-*")]
    if rounds:
        return "post-training" if max(rounds) == n_iter else f"pruning round {max(rounds) + 1}"
    pretrained = len(list((out / "checkpoints").glob("seed-*/pretrained")))
    if len(finished) == n_seeds * cells_per_seed:
        return "writing the tables"
    if len(finished) == pretrained * cells_per_seed:
        return "pre-training"
    return "pruning round 1 or the dense reference"


def same_files(a, b):
    return {name: (a / name).read_bytes() == (b / name).read_bytes() for name in COMPARED
            if (b / name).exists()}


def kills(n, seed, root):
    rng = np.random.default_rng(seed)
    reference = root / "reference"
    full, startup = run_to_end(reference, SMALL)
    working = full - startup
    print(f"reference run: {full:.1f} s, {startup:.1f} s of it before the run folder appeared",
          file=sys.stderr, flush=True)
    trials = []
    for k in range(n):
        out = root / f"trial-{k}"
        at = float(rng.uniform(0, working))  # a moment of the run's work, after its start-up
        killed = run_and_kill(out, SMALL, at, from_folder=True)
        phase = phase_of(out, 2, 2, 7) if killed else "finished"  # dense + 3 methods x 2 sparsities
        partial = killed and (out / "results.csv").exists() and phase != "finished"
        # killed after the run had finished (while the process exited): nothing to continue
        restart = run_to_end(out, SMALL)[0] if phase != "finished" else 0.0
        same = same_files(out, reference)
        trials.append(dict(kill_after_folder_s=at, killed=killed, phase=phase,
                           results_csv_after_kill=partial, restart_s=restart, identical=same,
                           all_identical=all(same.values())))
        print(f"trial {k}: killed {at:.1f} s after the folder appeared, in {phase}; restart "
              f"{restart:.1f} s; identical {all(same.values())}", file=sys.stderr, flush=True)
    return dict(study="small", overrides=SMALL, reference_s=full, startup_s=startup, trials=trials,
                all_identical=all(t["all_identical"] for t in trials),
                any_partial_results=any(t["results_csv_after_kill"] for t in trials),
                phases={p: sum(t["phase"] == p for t in trials) for p in {t["phase"] for t in trials}})


def default_study(root, fraction):
    reference = root / "reference"
    full, _ = run_to_end(reference, [])
    print(f"reference run: {full:.1f} s", file=sys.stderr, flush=True)
    out = root / "killed"
    killed = run_and_kill(out, [], fraction * full)
    phase = phase_of(out, 3, 5, 51)  # dense + 10 methods x 5 sparsities
    restart, _ = run_to_end(out, [])
    same = same_files(out, reference)
    return dict(study="digits_phase_shift", reference_s=full, kill_at_s=fraction * full, killed=killed,
                phase=phase, restart_s=restart, restart_fraction=restart / full, identical=same,
                all_identical=all(same.values()), torch_threads=os.environ.get("OMP_NUM_THREADS"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-study", action="store_true")
    parser.add_argument("--fraction", type=float, default=0.6, help="when the default study is killed")
    parser.add_argument("--dir", type=Path, default=None, help="where the run folders go (a temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="crash_resume_", dir=args.dir))
    result = default_study(root, args.fraction) if args.default_study else kills(args.kills, args.seed, root)
    import granger_prune
    from granger_prune.study.runner import git_sha
    result.update(package=granger_prune.__version__, git_sha=git_sha(), cpu_count=os.cpu_count())
    out = args.out or HERE / ("results-default.json" if args.default_study else "results-kills.json")
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}, indent=1))


if __name__ == "__main__":
    main()
