"""The ``granger-prune`` command."""

import argparse
import json
import re
import sys
import time
from pathlib import Path

DEFAULT_STUDY = "digits_phase_shift"


def _parser():
    parser = argparse.ArgumentParser(
        prog="granger-prune",
        description="Neural-network pruning as Granger-causal feature selection.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run a study and write its run folder",
        description="Run a study: causal pruning against the baselines at several sparsities.")
    run.add_argument("study", nargs="?", default=None,
                     help=f"a TOML file, a folder holding a config.toml, or the name of a bundled "
                          f"study (default: {DEFAULT_STUDY}; see `granger-prune list`)")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder to create, or an unfinished one to continue (default: the "
                          "latest unfinished run of this configuration under runs/, else a new "
                          "runs/<study>-<config hash>-<timestamp>)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the unfinished run folder DIR, of the configuration in its "
                          "config.json (or of the study named)")
    run.add_argument("--fresh", action="store_true",
                     help="start a new run folder even when an unfinished run of this configuration exists")
    run.add_argument("--force", action="store_true",
                     help="continue a run that another package version or git commit started")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config entry, e.g. --set seeds=[0] --set schedule.n_post=5")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--device", default=None,
                     help="auto (CUDA when present), cpu, cuda or cuda:N; overrides the config's device")
    commands.add_parser("list", help="name the bundled studies",
                        description="The studies that ship with the package, with their files.")
    report = commands.add_parser(
        "report", help="print a run folder's tables in Markdown",
        description="The mean test (or validation) accuracy with 95 % intervals over seeds, and "
                    "every criterion against the baseline, paired over seeds.")
    report.add_argument("run", type=Path, help="a run folder written by `granger-prune run`")
    report.add_argument("--metric", default="accuracy", choices=("accuracy", "val_accuracy"))
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "run":  # whether a study was named (else --resume reads the folder's)
        args.study_given = args.study is not None
        args.study = args.study or DEFAULT_STUDY
    from .config import BUNDLED, StudyConfig, bundled_studies, resolve_study
    if args.command == "list":
        for name in bundled_studies():
            header = []  # the configuration's opening comment, up to its first sentence
            for line in (BUNDLED / f"{name}.toml").read_text().splitlines():
                if not line.startswith("#"):
                    break
                header.append(line.lstrip("# "))
            text = " ".join(header)
            first = re.split(r"(?<=[a-z)])\. (?=[A-Z])", text)[0]  # not at "et al. 2017"
            print(f"{name:<22} {first.rstrip('.')}")
        return 0
    if args.command == "report":
        return _report(args.run, args.metric)
    from .report import phase_shift_table
    from .runner import print_progress, run_study

    from .run_folder import config_hash, latest_unfinished

    try:
        if args.resume is not None and (args.out is not None or args.fresh):
            raise ValueError("--resume names the folder to continue: it goes with neither --out nor --fresh")
        overrides = args.overrides + ([f"device={args.device}"] if args.device else [])
        if args.resume is not None and args.study_given is False:
            path = args.resume / "config.json"
            if not path.is_file():
                raise ValueError(f"{str(args.resume)!r} has no config.json: not a run folder")
            config = StudyConfig.from_dict(json.loads(path.read_text())).with_overrides(overrides)
        else:
            path = resolve_study(args.study)
            config = StudyConfig.from_toml(path).with_overrides(overrides)
        out = args.resume or args.out
        if out is None and not args.fresh:
            out = latest_unfinished("runs", config)
        if out is None:
            out = Path("runs") / f"{config.name}-{config_hash(config)[:8]}-{time.strftime('%Y%m%d-%H%M%S')}"
    except ValueError as err:
        print(f"granger-prune: error: {err}", file=sys.stderr)
        return 2
    verb = "continuing" if _unfinished(out) else "running"
    print(f"granger-prune: {verb} {path} into {out}", file=sys.stderr)
    tic = time.perf_counter()
    try:
        results = run_study(config, out, progress=None if args.quiet else print_progress,
                            force=args.force)
    except (ValueError, OSError, FloatingPointError) as err:  # a config, a disk, a divergence
        print(f"granger-prune: error: {err}", file=sys.stderr)
        for note in getattr(err, "__notes__", []):
            print(note, file=sys.stderr)
        if not getattr(err, "__notes__", None):  # the notes say it already
            _say_if_kept(out)
        return 2
    except KeyboardInterrupt:
        print("granger-prune: interrupted", file=sys.stderr)
        _say_if_kept(out)
        return 130
    table = phase_shift_table(results)["accuracy_mean"].unstack("sparsity_target")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"granger-prune: finished in {time.perf_counter() - tic:.1f} s; results in {out}",
          file=sys.stderr)
    return 0


def _say_if_kept(out):
    """Tell that an unfinished run folder is kept and how it continues."""
    if _unfinished(out):
        print(f"granger-prune: {out} is kept unfinished; the same command continues it", file=sys.stderr)


def _unfinished(folder):
    from .run_folder import UNFINISHED, is_run_folder, run_status
    try:
        return is_run_folder(folder) and run_status(folder).get("status") == UNFINISHED
    except ValueError:
        return False


def _report(run, metric):
    import pandas as pd

    from .intervals import paired_comparison
    from .report import markdown_comparison, markdown_summary

    if not (run / "results.csv").is_file():
        print(f"granger-prune: error: {str(run)!r} has no results.csv: not a run folder", file=sys.stderr)
        return 2
    results = pd.read_csv(run / "results.csv")
    print(f"{metric}, mean [95 % t interval] over seeds\n")
    print(markdown_summary(results, metric))
    if (run / "comparisons.csv").is_file():
        comparison = pd.read_csv(run / "comparisons.csv")
        if metric != "accuracy" and len(comparison):
            comparison = paired_comparison(results, comparison["baseline"].iloc[0], metric=metric)
        if len(comparison):
            print(f"\n{metric} minus {comparison['baseline'].iloc[0]}, paired over seeds: mean [95 % t interval], "
                  "paired t-test p\n")
            print(markdown_comparison(comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
