"""Multiple-testing corrections, vectorised for millions of p-values.

The same decisions and adjusted p-values as
:func:`statsmodels.stats.multitest.multipletests` for ``"fdr_bh"``
(Benjamini–Hochberg), ``"fdr_by"`` (Benjamini–Yekutieli), ``"holm"`` and
``"bonferroni"``; one sort, no Python loop over the p-values.  NaN p-values are
not allowed (a degenerate test reports p = 1, not NaN).

Decisions are made as statsmodels makes them, by comparing each p-value with
its threshold (``alpha / m``; ``alpha / (m - i + 1)`` step-down; ``alpha i / (m
c)`` step-up), not by ``adjusted <= alpha``: the product ``p * m`` can round
above ``alpha`` when ``p = alpha / m`` exactly, and such a p is rejected.
"""

import numpy as np

from .._checks import check_choice

METHODS = ("fdr_bh", "fdr_by", "holm", "bonferroni")


def adjust_pvalues(pvalues, alpha=0.05, method="fdr_bh"):
    """Adjusted p-values and rejections at level ``alpha``.

    Parameters
    ----------
    pvalues : array-like of shape (m,)
        p-values in [0, 1].
    alpha : float in (0, 1), default=0.05
        Family-wise error rate (Holm, Bonferroni) or false discovery rate
        (BH, BY) to control.
    method : {"fdr_bh", "fdr_by", "holm", "bonferroni"}

    Returns
    -------
    reject : ndarray of shape (m,), bool
        The procedure's decisions at level ``alpha`` (see the module
        docstring: p-values exactly at a threshold are rejected).
    adjusted : ndarray of shape (m,), float64
        Adjusted p-values (capped at 1), in the input order.

    Raises
    ------
    ValueError
        On NaN or out-of-range p-values, an unknown method or ``alpha``
        outside (0, 1).
    """
    check_choice("method", method, METHODS)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got alpha={alpha!r}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size and not (np.all(p >= 0.0) and np.all(p <= 1.0)):  # also false for NaN
        raise ValueError("pvalues must lie in [0, 1] and not be NaN")
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    if method == "bonferroni":
        return p <= alpha / m, np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="mergesort")
    ranked = p[order]
    rank = np.arange(1, m + 1, dtype=np.float64)
    sorted_reject = np.zeros(m, dtype=bool)
    if method == "holm":
        # step-down: max over i' <= i of (m - i' + 1) p_(i')
        sorted_adj = np.minimum(np.maximum.accumulate((m - rank + 1.0) * ranked), 1.0)
        above = np.flatnonzero(ranked > alpha / (m - rank + 1.0))
        sorted_reject[:above[0] if above.size else m] = True
    else:
        factor = np.sum(1.0 / rank) if method == "fdr_by" else 1.0
        # step-up: min over i' >= i of m c p_(i') / i'
        sorted_adj = np.minimum.accumulate((m * factor * ranked / rank)[::-1])[::-1]
        sorted_adj = np.minimum(sorted_adj, 1.0)
        below = np.flatnonzero(ranked <= rank / m / factor * alpha)
        if below.size:
            sorted_reject[:below[-1] + 1] = True
    adjusted = np.empty(m)
    adjusted[order] = sorted_adj
    reject = np.empty(m, dtype=bool)
    reject[order] = sorted_reject
    return reject, adjusted
