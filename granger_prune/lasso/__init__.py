"""Lasso and elastic net for Granger designs: working-set coordinate descent on NumPy or CuPy.

Every solver here minimises scikit-learn's ElasticNet objective (the Lasso at
``l1_ratio=1``); see :mod:`granger_prune.lasso.objective` for the objective,
its dual and the duality gap, and :mod:`granger_prune.lasso.solver` for the
algorithm.  Modules:

* ``objective``: objective, dual, duality gap, ``alpha_max``, soft threshold.
* ``problem``: a design and target validated and prepared once for many fits.
* ``solver``: the working-set solver (one design, NumPy and CuPy backends) and
  :class:`WorkingSetCD`, its settings.
* ``path``: regularisation paths and the ``alpha`` giving a support of ``k``.
* ``batch``: independent problems that share the target (one per layer).
* ``estimator``: :class:`CausalLasso`, the scikit-learn estimator.
"""

from .batch import fit_shared_target
from .estimator import CausalLasso
from .objective import alpha_max, duality_gap, primal_objective, soft_threshold
from .path import GridBisection, LassoPath, SupportSearch, alpha_for_support, lasso_path
from .problem import Problem
from .solver import LassoResult, WorkingSetCD, enet_coordinate_descent, lasso_coordinate_descent

__all__ = [
    "CausalLasso",
    "GridBisection",
    "LassoPath",
    "LassoResult",
    "Problem",
    "SupportSearch",
    "WorkingSetCD",
    "alpha_for_support",
    "alpha_max",
    "duality_gap",
    "enet_coordinate_descent",
    "fit_shared_target",
    "lasso_coordinate_descent",
    "lasso_path",
    "primal_objective",
    "soft_threshold",
]
