"""Trajectory-shaped lasso problems for the benchmark.

Every problem is ``(X, y)`` with ``X`` of shape (T, d), dense and non-negative,
its columns scaled to unit RMS (the scale the issue measured at), and ``y`` of
shape (T,).  Two families:

* ``synthetic``: squared AR(1) factor models.  Rows follow an AR(1) process in
  time, columns share a few latent factors (strong correlation), and before
  scaling the column scales are log-normal over several orders of magnitude, as
  squared parameter changes are.  ``y`` depends on 50 columns plus AR(1) noise.
* ``digits``: a real recorded trajectory: an MLP 64-512-512-10 trained by SGD
  with momentum on scikit-learn's digits, ``X = (Δθ)²`` of one layer
  (``fc0``: d = 32,768; ``fc1``: d = 262,144) and ``y = ΔL`` on the same
  minibatch.
"""

import numpy as np


ROWS = 64  # row block of the in-place updates (no temporary the size of X)


def unit_rms(X, xp=np):
    """Scale the columns of ``X`` to unit RMS in place (zero columns stay zero)."""
    sq = xp.zeros(X.shape[1], dtype=xp.float64)
    for start in range(0, X.shape[0], ROWS):
        sq += xp.sum(xp.square(X[start:start + ROWS], dtype=xp.float64), axis=0)
    rms = xp.sqrt(sq / X.shape[0])
    rms[rms == 0.0] = 1.0
    inverse = (1.0 / rms).astype(X.dtype)
    for start in range(0, X.shape[0], ROWS):
        X[start:start + ROWS] *= inverse
    return X


def synthetic(n_samples, n_features, *, n_factors=5, phi=0.9, n_informative=50, seed=0,
              dtype=np.float64, xp=np):
    """A squared AR(1) factor problem; returns ``(X, y)`` with unit-RMS columns.

    ``xp`` is ``numpy`` or ``cupy``: GPU problems are generated on the device.
    """
    host = np.random.default_rng(seed)
    rng = xp.random.default_rng(seed)
    factors = np.zeros((n_samples, n_factors))
    for t in range(n_samples):
        prev = factors[t - 1] if t else 0.0
        factors[t] = phi * prev + np.sqrt(1 - phi ** 2) * host.standard_normal(n_factors)
    loadings = rng.standard_normal((n_factors, n_features), dtype=dtype)
    X = xp.empty((n_samples, n_features), dtype=dtype)
    row = rng.standard_normal(n_features, dtype=dtype)
    innovation = np.sqrt(1 - phi ** 2)
    for t in range(n_samples):
        row *= phi
        row += innovation * rng.standard_normal(n_features, dtype=dtype)
        X[t] = row
    factors = xp.asarray(factors, dtype=dtype)
    col_scale = xp.exp(2.0 * rng.standard_normal(n_features, dtype=dtype))  # log-normal
    for start in range(0, n_samples, ROWS):
        block = X[start:start + ROWS]
        block += factors[start:start + ROWS] @ loadings
        xp.square(block, out=block)
        block *= col_scale
    unit_rms(X, xp)
    informative = xp.asarray(host.choice(n_features, n_informative, replace=False))
    noise = np.zeros(n_samples)
    eps = host.standard_normal(n_samples)
    for t in range(n_samples):
        noise[t] = 0.5 * (noise[t - 1] if t else 0.0) + eps[t]
    beta = xp.asarray(host.standard_normal(n_informative))
    y = X[:, informative].astype(xp.float64) @ beta + 2.0 * xp.asarray(noise)
    return X, y


def digits(layer, *, n_samples=1000, seed=0, dtype=np.float64, scale="column"):
    """The recorded digits-MLP problem of ``layer`` ("fc0" or "fc1"); returns ``(X, y)``,
    ``X`` with unit-RMS columns (``scale="column"``) or raw ``(Δθ)²`` (``scale=None``)."""
    import torch

    from granger_prune import (MLP, SGDConfig, TrajectoryRecorder, load_dataset,
                               prunable_parameters, vanilla_design)
    from granger_prune.zoo.datasets import Minibatches

    torch.manual_seed(seed)
    data = load_dataset("digits")
    model = MLP(hidden=(512, 512))
    params = prunable_parameters(model)
    names = list(params)
    name = {"fc0": names[0], "fc1": names[1]}[layer]
    optimizer = SGDConfig(lr=0.05, momentum=0.9, batch_size=32).make(model)
    recorder = TrajectoryRecorder(model, {name: params[name]})
    batches = Minibatches(data.x_train, data.y_train, 32, torch.Generator().manual_seed(seed))
    loss_fn = torch.nn.functional.cross_entropy
    while recorder.trajectory.n_steps < n_samples:
        for x, y in batches:
            recorder.step(optimizer, loss_fn, x, y)
            if recorder.trajectory.n_steps == n_samples:
                break
    design = vanilla_design(recorder.trajectory, [name])
    X = np.array(design.X, dtype=dtype)
    if scale == "column":
        X = unit_rms(X)
    return X, np.asarray(design.y, dtype=np.float64)
