"""Seed 001's figure 1 (proof of concept) measured: causal scores of SGD trajectories against the lasso.

    python studies/friedman/run.py                 # 10 seeds (the README's numbers)
    python studies/friedman/run.py --quick         # 2 seeds, 300 samples (the test's smoke run)
    python studies/friedman/run.py --epochs 10 --out studies/friedman/epochs10
    python studies/friedman/run.py --inputs standardised --out studies/friedman/standardised_inputs

For every seed: ``make_friedman1(n_samples=1000, n_features=10, noise=1.0,
random_state=seed)`` (X_0..X_4 informative, X_5..X_9 irrelevant), y standardised
to mean 0 and variance 1, X kept as drawn (uniform on [0, 1]; ``--inputs
standardised`` z-scores it instead).  The reference importance is ``|coef|`` of
``LassoCV(cv=5, random_state=seed)`` on the ``StandardScaler``-ed inputs.  Four
models are trained by plain SGD (no momentum, lr 0.05, batch 16, 3 epochs, MSE,
the same batches for every model of a seed), every step recorded on the first
layer's weight by ``TrajectoryRecorder`` (loss change on the step's own batch):

* ``linear/zero``: ``nn.Linear(10, 1)``, weight and bias zero;
* ``linear/default``: ``nn.Linear(10, 1)``, PyTorch's default initialisation;
* ``mlp/default``: ``Linear(10, 32) - Tanh - Linear(32, 1)``, PyTorch's default;
* ``mlp/small``: the same with every default parameter times 0.01.

Each score (``Rank(score=..., fit=..., alpha_ratio=0.01)`` on the vanilla design,
one problem per layer, plus the loss share at ``alpha_ratio=0.001``) gives a
per-parameter score through ``select_causal(...).scores`` (``|γ|`` for the
signed gamma).  ``taylor_share`` is no fit: ``mean_t (Δθ_k^t)² / lr``, the loss
share at the Taylor model's ``γ_k = -1/lr``.  An input's importance is its
weight's score (linear) or the sum of the scores of its 32 first-layer weights
(MLP).  Metrics per (model, score, seed): see :func:`metrics`.

Writes ``results.csv`` (model x score x seed), ``reference.csv`` (the LassoCV
reference's own AUC), ``importances.csv`` (every input's importance),
``summary.csv``, ``meta.json``, ``friedman.png`` (every model and score on one axis)
and ``friedman_linear_zero.png`` (the paper's panels, own axes) to ``--out``.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from scipy.stats import binomtest, spearmanr  # noqa: E402
from sklearn.datasets import make_friedman1  # noqa: E402
from sklearn.linear_model import LassoCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402

import granger_prune as gp  # noqa: E402
from granger_prune.record.recorder import TrajectoryRecorder  # noqa: E402
from granger_prune.selection.causal import select_causal  # noqa: E402
from granger_prune.selection.causal_rules import Rank  # noqa: E402
from granger_prune.study.intervals import t_interval  # noqa: E402
from granger_prune.study.runner import git_sha  # noqa: E402

HERE = Path(__file__).resolve().parent
N_FEATURES = 10
INFORMATIVE = np.arange(5)
IRRELEVANT = np.arange(5, 10)
LINEAR_INFORMATIVE = np.array([0, 1, 3, 4])
MODELS = ("linear/zero", "linear/default", "mlp/default", "mlp/small")
ALPHA_RATIO = 0.01
SCORES = {
    "gamma": Rank(score="gamma", alpha_ratio=ALPHA_RATIO),
    "standardised": Rank(score="standardised", alpha_ratio=ALPHA_RATIO),
    "loss_share": Rank(score="loss_share", alpha_ratio=ALPHA_RATIO),
    "marginal": Rank(score="marginal", alpha_ratio=ALPHA_RATIO),
    "loss_share/ridge": Rank(score="loss_share", fit="ridge", alpha_ratio=ALPHA_RATIO),
    "loss_share/a0.001": Rank(score="loss_share", alpha_ratio=0.001),
}
#: Not a fit: the loss share at the Taylor model's gamma = -1/lr, (1/lr) mean_t (dtheta_k^t)^2.
TAYLOR = "taylor_share"
LABELS = tuple(SCORES) + (TAYLOR,)
HIDDEN = 32
SMALL_SCALE = 0.01


def make_model(kind):
    """The model ``kind`` (one of MODELS) and the name of its recorded first-layer weight."""
    if kind.startswith("linear"):
        model = nn.Linear(N_FEATURES, 1)
        if kind == "linear/zero":
            with torch.no_grad():
                model.weight.zero_()
                model.bias.zero_()
        return model, "weight", model.weight
    model = nn.Sequential(nn.Linear(N_FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))
    if kind == "mlp/small":
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(SMALL_SCALE)
    return model, "0.weight", model[0].weight


def train(kind, X, y, seed, lr, batch_size, epochs):
    """Train ``kind`` by plain SGD, recording every step; (trajectory, name, weight, train MSEs)."""
    torch.manual_seed(seed)
    model, name, weight = make_model(kind)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
    recorder = TrajectoryRecorder(model, {name: weight})
    loss_fn = nn.MSELoss()
    order = torch.Generator().manual_seed(seed)  # every model of a seed sees the same batches
    with torch.no_grad():
        mse = [float(loss_fn(model(X), y))]
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=order)
        for start in range(0, len(X), batch_size):
            batch = perm[start:start + batch_size]
            recorder.step(optimizer, loss_fn, X[batch], y[batch])
        with torch.no_grad():
            mse.append(float(loss_fn(model(X), y)))
    return recorder.trajectory, name, weight.detach().numpy().copy(), mse


def input_importance(score_matrix):
    """Per-input importance from a first-layer score matrix of shape (out, 10): column sums of |score|."""
    return np.abs(np.asarray(score_matrix, dtype=np.float64)).reshape(-1, N_FEATURES).sum(axis=0)


def metrics(importance, reference):
    """The metrics of one importance vector (shape (10,)) against the reference.

    ``spearman`` over the informative inputs X0..X4; ``auc``: fraction of
    (informative, irrelevant) pairs with the informative input ranked higher
    (ties 1/2); ``separated``: 1 when all irrelevant inputs rank strictly below
    all informative ones.  ``auc_linear`` and ``separated_linear`` do the same
    without X2, whose effect 20 (x2 - 0.5)^2 is symmetric about the mean of x2
    and so has no linear part (the lasso reference gives it about 0).
    """
    rho = np.nan  # Spearman is undefined on a constant vector
    if np.ptp(importance[INFORMATIVE]) > 0 and np.ptp(reference[INFORMATIVE]) > 0:
        rho = float(spearmanr(importance[INFORMATIVE], reference[INFORMATIVE]).statistic)
    out = dict(spearman=rho)
    for suffix, informative in (("", INFORMATIVE), ("_linear", LINEAR_INFORMATIVE)):
        diff = importance[informative][:, None] - importance[IRRELEVANT][None, :]
        out["auc" + suffix] = float(np.mean((diff > 0) + 0.5 * (diff == 0)))
        out["separated" + suffix] = int(diff.min() > 0)
    return out


def friedman(seed, args):
    """Inputs (n, 10) and standardised targets (n,) of one seed."""
    X, y = make_friedman1(n_samples=args.n_samples, n_features=N_FEATURES, noise=1.0, random_state=seed)
    y = (y - y.mean()) / y.std()
    if args.inputs == "standardised":  # a sensitivity variant: the models train on z-scored inputs
        X = StandardScaler().fit_transform(X)
    return X, y


def run_seed(seed, args):
    """(metric rows, importance rows) of one seed: the reference, then every model and score."""
    X, y = friedman(seed, args)
    lasso = LassoCV(cv=5, random_state=seed).fit(StandardScaler().fit_transform(X), y)
    reference = np.abs(lasso.coef_)
    design = np.c_[X, np.ones(len(X))]
    ols_mse = float(np.mean((design @ np.linalg.lstsq(design, y, rcond=None)[0] - y) ** 2))
    rows = [dict(model="reference", score="LassoCV", seed=seed, **metrics(reference, reference),
                 lasso_alpha=float(lasso.alpha_), ols_mse=ols_mse)]
    rows[0]["spearman"] = np.nan  # against itself
    importances = [dict(seed=seed, model="reference", score="LassoCV",
                        **{f"X{j}": v for j, v in enumerate(reference)})]
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)[:, None]
    for kind in MODELS:
        trajectory, name, weight, mse = train(kind, Xt, yt, seed, args.lr, args.batch_size, args.epochs)
        alive = {name: np.ones(weight.shape, dtype=bool)}
        common = dict(model=kind, seed=seed, n_steps=trajectory.n_steps, n_params=int(weight.size),
                      mse_init=mse[0], mse_final=mse[-1], ols_mse=ols_mse)
        per_score = {}
        for label, rule in SCORES.items():
            selection = select_causal(trajectory, alive, rule=rule, density=0.5, scope="layer")
            per_score[label] = (input_importance(selection.scores[name]),
                                int(selection.diagnostics["lasso_support"].iloc[0]))
        steps = np.asarray(trajectory.deltas(name), dtype=np.float64)
        per_score[TAYLOR] = (input_importance((steps ** 2).mean(axis=0) / args.lr), int(weight.size))
        for label, (importance, support) in per_score.items():
            rows.append(dict(common, score=label, **metrics(importance, reference), support=support))
            importances.append(dict(seed=seed, model=kind, score=label,
                                    **{f"X{j}": v for j, v in enumerate(importance)}))
    return rows, importances


def summarise(frame):
    """Per (model, score): means with 95 % t intervals over seeds, separated counts with
    95 % Clopper-Pearson intervals."""
    rows = []
    for (model, score), part in frame.groupby(["model", "score"], sort=False):
        row = dict(model=model, score=score, seeds=len(part),
                   spearman_valid=int(part["spearman"].notna().sum()))
        for metric in ("spearman", "auc", "auc_linear"):
            row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"] = t_interval(part[metric])
        for metric in ("separated", "separated_linear"):
            k, n = int(part[metric].sum()), len(part)
            ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            row.update({metric: k, f"{metric}_fraction": k / n, f"{metric}_low": ci.low,
                        f"{metric}_high": ci.high})
        row["mse_final"] = part["mse_final"].mean() if "mse_final" in part else np.nan
        row["ols_mse"] = part["ols_mse"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def normalised_importances(importances):
    """``importances`` with every row (one seed's inputs) divided by its sum (NaN for a zero sum)."""
    cols = [f"X{j}" for j in range(N_FEATURES)]
    values = importances[cols].to_numpy(dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    normalised = importances.copy()
    normalised[cols] = np.divide(values, totals, out=np.full_like(values, np.nan), where=totals > 0)
    return normalised


def _boxes(ax, normalised, model, score, title):
    part = normalised[(normalised["model"] == model) & (normalised["score"] == score)]
    data = [part[f"X{j}"].dropna().to_numpy() for j in range(N_FEATURES)]
    box = ax.boxplot(data, patch_artist=True, widths=0.6, medianprops=dict(color="black"),
                     flierprops=dict(markersize=2))
    for j, patch in enumerate(box["boxes"]):
        patch.set_facecolor("tab:blue" if j in INFORMATIVE else "tab:gray")
        patch.set_alpha(0.6)
    ax.axhline(1 / N_FEATURES, color="tab:red", lw=0.6, ls="--")  # every input alike
    ax.set_xticks(range(1, N_FEATURES + 1))
    ax.set_xticklabels([str(j) for j in range(N_FEATURES)], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=8)


def plot(importances, path):
    """Box plots over seeds of each input's importance, normalised per seed to sum 1, on one
    axis: a row per model, the LassoCV reference first."""
    normalised = normalised_importances(importances)
    n_cols = 1 + len(LABELS)
    fig, axes = plt.subplots(len(MODELS), n_cols, figsize=(2.6 * n_cols, 2.3 * len(MODELS)),
                             sharey=True, squeeze=False)
    for r, kind in enumerate(MODELS):
        _boxes(axes[r, 0], normalised, "reference", "LassoCV", "LassoCV (reference)")
        axes[r, 0].set_ylabel("importance / sum", fontsize=8)
        for c, score in enumerate(LABELS, start=1):
            _boxes(axes[r, c], normalised, kind, score, f"{kind}\n{score}")
    for ax in axes[-1]:
        ax.set_xlabel("input j", fontsize=8)
    fig.suptitle(f"make_friedman1: input importance over {importances['seed'].nunique()} seeds "
                 "(blue X0-X4 informative, grey X5-X9 irrelevant; dashed: 1/10)", fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.995, bottom=0.06, top=0.9, wspace=0.08, hspace=0.55)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_linear_zero(importances, path):
    """The paper's panels for the zero-initialised linear model, each on its own y range."""
    normalised = normalised_importances(importances)
    panels = [("reference", "LassoCV", "LassoCV (reference)")] + [
        ("linear/zero", s, f"linear/zero {s}") for s in ("gamma", "loss_share", "taylor_share")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8))
    for ax, (model, score, title) in zip(axes, panels):
        _boxes(ax, normalised, model, score, title)
        ax.set_xlabel("input j", fontsize=8)
    axes[0].set_ylabel("importance / sum", fontsize=8)
    fig.suptitle(f"make_friedman1, zero-initialised linear model, {importances['seed'].nunique()} "
                 "seeds (own y range per panel)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 300 samples")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--inputs", choices=("raw", "standardised"), default="raw",
                        help="train on X as drawn (uniform [0, 1], default) or z-scored")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_samples = 2, 300
    torch.set_num_threads(1)
    started = time.time()
    seeds = list(range(args.seeds))
    rows, importances = [], []
    for seed in seeds:
        seed_rows, seed_importances = run_seed(seed, args)
        rows += seed_rows
        importances += seed_importances
        print(f"[{time.time() - started:6.1f}s] seed {seed} done", flush=True)
    frame = pd.DataFrame(rows)
    results = frame[frame["model"] != "reference"].dropna(axis=1, how="all").reset_index(drop=True)
    reference = frame[frame["model"] == "reference"].dropna(axis=1, how="all")
    summary = summarise(frame)
    importance_frame = pd.DataFrame(importances)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "results.csv", index=False)
    reference.to_csv(args.out / "reference.csv", index=False)
    importance_frame.to_csv(args.out / "importances.csv", index=False)
    summary.to_csv(args.out / "summary.csv", index=False)
    plot(importance_frame, args.out / "friedman.png")
    plot_linear_zero(importance_frame, args.out / "friedman_linear_zero.png")
    print(f"[{time.time() - started:6.1f}s] wrote {args.out}", flush=True)
    meta = dict(granger_prune=gp.__version__, git_sha=git_sha(HERE), python=platform.python_version(),
                torch=torch.__version__, numpy=np.__version__, scipy=scipy.__version__,
                scikit_learn=sklearn.__version__, matplotlib=matplotlib.__version__,
                platform=platform.platform(), torch_threads=torch.get_num_threads(), seeds=seeds,
                n_samples=args.n_samples, inputs=args.inputs, noise=1.0, lr=args.lr, momentum=0.0,
                batch_size=args.batch_size, epochs=args.epochs, hidden=HIDDEN, activation="tanh",
                small_scale=SMALL_SCALE, models=list(MODELS),
                scores={k: v.to_dict() for k, v in SCORES.items()}, density=0.5, scope="layer",
                quick=args.quick, wall_seconds=round(time.time() - started, 2))
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
