"""Common factors of the steps: randomized SVD of the column-standardised design.

Every parameter's step carries what all steps share (the learning rate, the
gradient norm, the phase of training), so each step predicts ``ΔL`` given only
an intercept and the marginal null "this parameter's step does not explain the
loss change" is false for all of them.  The null a user means is conditional:

    H0(u):  X_u adds nothing to  y ~ Z + F

where ``F`` (T, r) spans the common variation of all steps.  Here ``F`` is the
leading ``r`` left singular vectors of the standardised design ``X_s = (X -
1 μ') diag(1/σ)`` (each column centred, unit variance; constant columns left
out), the principal-component estimate of an approximate factor model (Bai and
Ng 2002).

The singular vectors come from randomized subspace iteration (Halko,
Martinsson and Tropp 2011) on ``X_s X_s'`` (T x T), never formed: every pass
over ``X`` runs column block by column block (``Y += X_s,c (X_s,c' Q)``, each
block standardised in a float64 copy of itself) and the Gaussian test matrix is
drawn block by block, so memory is ``O(T · (r + oversampling))`` beyond one
block, whatever ``d`` is (``n_iter + 3`` passes: the column moments, the
sketch, the power iterations, the final products).  NumPy or CuPy
by the input.  scikit-learn's ``randomized_svd`` needs the standardised matrix
itself (a dense copy the size of ``X``) and has no CuPy path, hence this one.

The number of factors (``n_factors``):

* ``"bai_ng"`` (default): Bai and Ng's (2002) ``IC_p2``, ``ln V(r) + r ((d + T) /
  (d T)) ln min(d, T)`` with ``V(r)`` the mean squared residual of ``X_s`` after
  ``r`` factors, minimised over ``0 ... max_factors``;
* ``"eigenvalue_ratio"``: Ahn and Horenstein's (2013) ``argmax_r σ_r² / σ_{r+1}²``
  over ``1 ... max_factors``;
* an integer: that many.
"""

from dataclasses import dataclass

import numpy as np

from ..backend import get_namespace, to_numpy

FACTOR_RULES = ("bai_ng", "eigenvalue_ratio")
#: Entries of X (T x block columns) handled per pass block: 2 MB of float64, so that a
#: block's standardised copy stays in cache between the products that read it (at
#: d = 1e6, T = 500 float32 a factor fit took 30-32 s with these blocks, 39 s with 64 MB ones).
BLOCK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class CommonFactors:
    """The common factors of a design and how they were chosen.

    Attributes
    ----------
    factors : array of shape (T, r)
        Orthonormal columns, orthogonal to the constant (NumPy or CuPy as the input).
    n_factors : int
    share : float
        The share of ``||X_s||_F²`` the ``r`` factors explain.
    singular_values : ndarray of shape (max_factors + 1,)
        Leading singular values of ``X_s`` (host).
    criterion : ndarray
        The criterion of each candidate ``r`` (host; empty for a given integer).
    rule : str
    """

    factors: object
    n_factors: int
    share: float
    singular_values: np.ndarray
    criterion: np.ndarray
    rule: str


def _column_moments(X, xp, step):
    """Column means and standard deviations (float64, ddof 0), block by block, two-pass."""
    n_samples, d = X.shape
    mean = xp.empty(d)
    sd = xp.empty(d)
    for first in range(0, d, step):
        block = xp.asarray(X[:, first:first + step], dtype=xp.float64)
        m = xp.mean(block, axis=0)
        mean[first:first + step] = m
        sd[first:first + step] = xp.sqrt(xp.mean((block - m) ** 2, axis=0))
    return mean, sd


def _standardisation(X, xp):
    """``(step, mean, inverse_sd, n_live)``: the block width, the column means, ``1 / sd``
    (0 for constant columns, which ``X_s`` leaves out) and the number of other columns
    (one pass over ``X``)."""
    step = max(1, BLOCK_ENTRIES // max(X.shape[0], 1))
    mean, sd = _column_moments(X, xp, step)
    live = sd > 0
    inverse_sd = xp.where(live, 1.0 / xp.where(live, sd, 1.0), 0.0)
    return step, mean, inverse_sd, int(xp.count_nonzero(live))


def _standardised_blocks(X, mean, inverse_sd, xp, step):
    """``X_s`` column block by column block: ``(X_c - mean_c) * inverse_sd_c`` in float64.

    Centred in the block itself (not by subtracting ``1 (μ' Ω)`` from the
    products), so a column whose mean dwarfs its spread loses nothing.
    """
    for first in range(0, X.shape[1], step):
        stop = first + step
        block = xp.asarray(X[:, first:stop], dtype=xp.float64) - mean[first:stop]
        yield block * inverse_sd[first:stop]


def standardised_singular_values(X, n_components, *, n_oversamples=10, n_iter=2, seed=0):
    """``(U, s, total)``: leading left singular vectors and values of ``X_s``, and ``||X_s||_F²``.

    ``U`` has shape (T, n_components) in ``X``'s namespace, ``s`` (host) shape
    (n_components,).  Columns with zero variance are left out of ``X_s``.
    """
    xp = get_namespace(X)
    n_samples, d = X.shape
    step, mean, inverse_sd, n_live = _standardisation(X, xp)
    total = float(n_samples * n_live)
    width = min(n_components + n_oversamples, n_samples, max(n_live, 1))
    rng = np.random.default_rng(seed)
    Y = xp.zeros((n_samples, width))
    for block in _standardised_blocks(X, mean, inverse_sd, xp, step):
        Y += block @ xp.asarray(rng.standard_normal((block.shape[1], width)))
    for _ in range(n_iter):
        Q, _ = xp.linalg.qr(Y)
        Y = xp.zeros_like(Q)
        for block in _standardised_blocks(X, mean, inverse_sd, xp, step):
            Y += block @ (block.T @ Q)
    Q, _ = xp.linalg.qr(Y)
    C = xp.zeros((width, width))
    for block in _standardised_blocks(X, mean, inverse_sd, xp, step):
        W = block.T @ Q
        C += W.T @ W  # (Q' X_s)(Q' X_s)'
    eigenvalues, V = xp.linalg.eigh(C)
    order = xp.argsort(eigenvalues)[::-1][:n_components]
    s = xp.sqrt(xp.maximum(eigenvalues[order], 0.0))
    return Q @ V[:, order], to_numpy(s), total


def common_factors(X, n_factors="bai_ng", *, max_factors=8, n_iter=2, seed=0):
    """The leading principal components of the standardised steps, as regressors.

    Parameters
    ----------
    X : array of shape (T, d)
        The design (NumPy or CuPy, float32 or float64; not copied whole).
    n_factors : "bai_ng", "eigenvalue_ratio" or int >= 0
        How many (see the module docstring).
    max_factors : int >= 1
        The largest number a rule considers.
    n_iter : int >= 0
        Power iterations of the randomized SVD (each one more pass over ``X``).
    seed : int
        Of the Gaussian test matrix.

    Returns
    -------
    CommonFactors
    """
    n_samples, d = X.shape
    if isinstance(n_factors, str):
        if n_factors not in FACTOR_RULES:
            raise ValueError(f"n_factors must be an integer or one of {FACTOR_RULES}, "
                             f"got {n_factors!r}")
        if max_factors < 1:
            raise ValueError(f"max_factors must be at least 1, got {max_factors}")
        wanted = max_factors + 1
    elif isinstance(n_factors, (int, np.integer)) and not isinstance(n_factors, bool) and n_factors >= 0:
        wanted = int(n_factors)
    else:
        raise ValueError(f"n_factors must be a non-negative integer or one of {FACTOR_RULES}, "
                         f"got {n_factors!r}")
    wanted = min(wanted, n_samples - 1, d)
    if wanted == 0:
        xp = get_namespace(X)
        return CommonFactors(xp.zeros((n_samples, 0)), 0, 0.0, np.zeros(0), np.zeros(0),
                             str(n_factors))
    U, s, total = standardised_singular_values(X, wanted, n_iter=n_iter, seed=seed)
    if n_factors == "bai_ng":
        explained = np.concatenate([[0.0], np.cumsum(s[:-1] ** 2)]) if wanted > 1 else np.zeros(1)
        candidates = np.arange(explained.size)
        residual = np.maximum(total - explained, np.finfo(float).tiny) / (n_samples * d)
        criterion = np.log(residual) + candidates * (d + n_samples) / (d * n_samples) \
            * np.log(min(d, n_samples))
        r = int(np.argmin(criterion))
    elif n_factors == "eigenvalue_ratio":
        squares = s ** 2
        criterion = squares[:-1] / np.maximum(squares[1:], np.finfo(float).tiny)
        r = int(np.argmax(criterion)) + 1 if criterion.size else 1
    else:
        criterion, r = np.zeros(0), wanted
    share = float(np.sum(s[:r] ** 2) / total) if total > 0 else 0.0
    return CommonFactors(U[:, :r], r, share, s, criterion, str(n_factors))


def explained_share(X, F):
    """The share of ``||X_s||_F²`` in the span of the (centred) columns of ``F`` (T, r).

    Two passes over ``X``, block by block (the moments, then the projections):
    the share of the standardised steps' variance that given regressors
    (trajectory summaries) explain, comparable with :attr:`CommonFactors.share`.
    """
    xp = get_namespace(X, F)
    n_samples = X.shape[0]
    if F.shape[1] == 0:
        return 0.0
    Q, _ = xp.linalg.qr(F - xp.mean(F, axis=0))
    step, mean, inverse_sd, n_live = _standardisation(X, xp)
    total = float(n_samples * n_live)
    explained = 0.0
    for block in _standardised_blocks(X, mean, inverse_sd, xp, step):
        explained += float(xp.sum((block.T @ Q) ** 2))
    return explained / total if total > 0 else 0.0
