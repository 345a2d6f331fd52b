"""Intervals over seeds and paired comparisons of two criteria.

A study runs every criterion on the same seeds (the same initialisation,
pre-training and minibatch order for every criterion of a seed), so two
criteria at one sparsity are compared *paired over seeds*: on the per-seed
differences ``d_s = m_s(A) - m_s(B)`` of their metric.

* :func:`t_interval`: the mean of ``n`` values and its Student-t interval,
  ``mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)`` (NaN bounds for ``n < 2``).
* :func:`paired_comparison`: for every criterion and sparsity, the mean
  difference to a baseline criterion, its t interval, the paired t-test's
  two-sided p-value (``scipy.stats.ttest_rel``), and the exact two-sided
  sign-flip p-value, which assumes only that the differences are symmetric about
  zero under the null: the fraction of the ``2^n`` sign patterns whose
  ``|mean|`` is at least the observed one.  With ``n`` seeds the sign-flip p-value
  is at least ``2 / 2^n`` (0.0625 for 5 seeds): few seeds cannot reject at 5 %
  without the t-test's normality.
"""

import itertools

import numpy as np
import pandas as pd
from scipy import stats

COMPARISON_COLUMNS = ["label", "sparsity_target", "baseline", "n_pairs", "mean_difference", "ci_low",
                      "ci_high", "t", "pvalue", "pvalue_signflip"]


def t_interval(values, level=0.95):
    """``(mean, low, high)`` of ``values``: the mean and its Student-t interval.

    Parameters
    ----------
    values : array-like of shape (n,)
        NaN entries are dropped.
    level : float in (0, 1)

    Returns
    -------
    tuple of float
        ``low == high == mean`` when all values are equal; NaN bounds for ``n < 2``
        and an all-NaN mean for ``n = 0``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = values.size
    if n == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if n < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def signflip_pvalue(differences):
    """Exact two-sided sign-flip p-value of paired ``differences`` (NaN for none).

    Enumerates all ``2^n`` sign patterns (``n <= 20``)."""
    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    if n == 0:
        return np.nan
    if n > 20:
        raise ValueError(f"the exact sign-flip test enumerates 2^n patterns; n={n} is too many")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    observed = abs(d.mean())
    flipped = np.abs(signs @ d) / n
    # a relative tolerance so that patterns equal to the observed |mean| up to rounding count
    return float(np.mean(flipped >= observed * (1 - 1e-12)))


def paired_comparison(results, baseline, metric="accuracy", level=0.95):
    """Every criterion against ``baseline`` at each target sparsity, paired over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of a study's ``results.csv`` (``label``, ``sparsity_target``,
        ``seed`` and ``metric``).
    baseline : str
        The label compared against (e.g. ``"magnitude/layer"``).
    metric : str
        The column compared (``"accuracy"``, ``"val_accuracy"``, ``"loss"``...).
    level : float
        Of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per other label and target sparsity that the baseline also ran
        at, with the seeds both ran (``n_pairs``): ``mean_difference`` (label
        minus baseline), ``ci_low``, ``ci_high``, the paired t statistic ``t``,
        its two-sided ``pvalue`` (NaN when the differences are all equal or
        ``n_pairs < 2``) and ``pvalue_signflip``.  Rules without a target
        sparsity (NaN) and the dense reference have no partner and are left out.
    """
    if baseline not in set(results["label"]):
        raise ValueError(f"baseline {baseline!r} is not among the labels {sorted(set(results['label']))}")
    if metric not in results:
        raise ValueError(f"results have no column {metric!r}")
    ours = results[results["label"] == baseline].set_index(["sparsity_target", "seed"])[metric]
    rows = []
    for (label, target), group in results[results["label"] != baseline].groupby(
            ["label", "sparsity_target"], sort=False):
        paired = group.set_index(["sparsity_target", "seed"])[metric].to_frame("value").join(
            ours.rename("base"), how="inner").dropna()
        if paired.empty:
            continue
        d = (paired["value"] - paired["base"]).to_numpy()
        mean, low, high = t_interval(d, level)
        if d.size >= 2 and np.ptp(d) > 0:
            test = stats.ttest_1samp(d, 0.0)
            t, p = float(test.statistic), float(test.pvalue)
        else:
            t = p = np.nan
        rows.append(dict(label=label, sparsity_target=target, baseline=baseline, n_pairs=d.size,
                         mean_difference=mean, ci_low=low, ci_high=high, t=t, pvalue=p,
                         pvalue_signflip=signflip_pvalue(d)))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
