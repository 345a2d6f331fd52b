"""Granger designs built from a recorded trajectory.

A design is the pair of nested regressions that a Granger test compares::

    restricted:   y = Z b + ε
    unrestricted: y = Z b + Σ_u Σ_i γ_ui x_ui + ε

``y`` (shape (T,)) is the loss change ``ΔL``, ``Z`` (T, k) holds the restricted
regressors (an intercept and ``lags`` lagged losses) and ``X`` (T, d) the
features of the *units*: single parameters, or weight-shared groups of them.

Feature sets (one column per unit and feature type, unit-major)
----------------------------------------------------------------
* ``"vanilla"`` (seed 000 eq. 7/9, seed 001 eq. 3): ``(Δθ^t)²``, from the
  first-order Taylor step of plain gradient descent.
* ``"momentum"`` (seed 000 appendix A eq. 16–19, seed 001 eq. 25):
  ``(Δθ^t)², (Δθ^{t-1})², Δθ^t·Δθ^{t-1}``, for SGD with momentum.  Seed 001
  uses the first two with lagged losses in the restricted model; seed 000 all
  three without.  The package uses all three, and the lagged losses are set by
  ``lags`` (``momentum_design`` defaults to 2, seed 001's ``L^t, L^{t-1}``).
  A unit's columns are tested together (one F-test on 3 df) and pruned
  together (a unit is unimportant only when all its γ are zero).

Lagged losses.  Lag ``j`` of row ``t`` is ``loss_before[t - j + 1]``, the loss
at ``θ^{t-j}``: lag 1 is the level the step starts from.  A row exists when all
of its lags and (momentum) the previous step exist, so a design has
``n_rows - max(lags - 1, [momentum])`` rows.

Step sizes.  The vanilla design comes from ``ΔL^t ≈ -(1/η) Σ_k (Δθ_k^t)²``: one
coefficient ``γ_k = -1/η`` per parameter assumes one step size.  Under a
learning-rate schedule ``η_t`` changes from step to step, and raw ``(Δθ)²``
spans the schedule's range squared.  ``step_size="divide"`` fits instead

    ΔL^t / η_t = c + Σ_k γ_k (Δθ_k^t / η_t)² + ε_t

(``Δθ/η = -g`` for plain SGD, so every ``γ_k = -1`` whatever the schedule; for
momentum features ``Δθ^{t-1}`` is divided by ``η_{t-1}``), with the ``η_t`` the
recorder kept per tensor; every tensor of one design must have the same ``η_t``
(one parameter group, or groups on one schedule).  The default
``"ignore"`` fits ``ΔL^t`` on ``(Δθ^t)²`` as the papers write it.

Weight sharing (seed 000 §5 (i)).  ``groups`` maps every tensor to an integer
array of its shape: entries with the same group id share one γ per feature
type, so the group's feature is the sum of its (alive) members' features.
Filters are the output channels of a weight with its bias (and BatchNorm
channel); a layer is one group.

Scale matters (DESIGN §2): ``(Δθ)²`` is ~1e-8…1e-14 and how far a parameter
moved is part of the causal signal.  ``scale="raw"`` (default) keeps the
columns as they are; ``scale="layer"`` divides every column by one factor (the
RMS of all entries), which changes only the units of α; ``scale="column"``
gives every column unit RMS, which changes the method itself (each parameter's
step size is discarded) and is offered to study that choice.  With α expressed
relative to ``α_max = ||Xᵀy||∞ / T`` the raw and layer scales select the same
support.

This module works on plain NumPy arrays and never imports torch.
"""

import contextlib
import operator
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_choice
from ..backend import get_namespace, to_numpy
from ..exceptions import DegenerateLayerWarning

LOSS_CHANGES = ("same_batch", "consecutive")
RESTRICTED_MODELS = ("intercept", "none")
SCALES = ("raw", "layer", "column")
STEP_SIZES = ("ignore", "divide")
#: The feature types of each feature set, in column order within a unit.
FEATURE_SETS = {
    "vanilla": ("dtheta_sq",),
    "momentum": ("dtheta_sq", "dtheta_prev_sq", "dtheta_cross"),
}
MIN_ROWS = 3


@dataclass(frozen=True)
class GrangerDesign:
    """A Granger regression problem and the map from its units to parameters.

    Attributes
    ----------
    y : ndarray of shape (T,)
        Loss changes ``ΔL``.
    X : ndarray of shape (T, n_units * m)
        Features of the unrestricted model (scaled as ``scale`` says); column
        ``u * m + i`` is feature type ``feature_kinds[i]`` of unit ``u``.  A
        CuPy array when built from the steps of a
        :class:`~granger_prune.record.DeviceTrajectory` on a GPU (everything
        else of the design is on the host).
    Z : ndarray of shape (T, k)
        Regressors of the restricted model, named by ``restricted_names``.
    restricted_names : tuple of str
        ``"const"`` for the intercept, ``"loss_lag<j>"`` for lagged losses.
    feature_kinds : tuple of str
        The ``m`` feature types of every unit (see :data:`FEATURE_SETS`).
    tensor_names : tuple of str
        The tensors whose parameters the units are made of.
    shapes : dict of str to tuple
        Shape of every tensor in ``tensor_names``.
    unit_map : dict of str to ndarray of int
        Per tensor, flat array of the unit of every entry, ``-1`` for entries
        that are not in the design (pruned before).
    n_units : int
        Number of units (parameters, or weight-shared groups).
    column_scale : ndarray of shape (n_units * m,)
        ``X[:, j] = X_raw[:, j] / column_scale[j]``; a coefficient on the raw
        scale is ``coef[j] / column_scale[j]``.
    scale : str
        The scaling that was applied.
    rows : ndarray of shape (T,), int
        The recorded step of every row.
    summaries : dict of str to ndarray of shape (T,)
        Named trajectory summaries of every row, candidates for the restricted
        model of a factor-adjusted test: ``"mean_sq_step"`` (the mean ``(Δθ^t)²``
        over the design's parameters, divided by ``η_t`` like the features with
        ``step_size="divide"``) always, and ``"learning_rate"`` and
        ``"grad_norm"`` when the trajectory recorded them for every row.
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    restricted_names: tuple
    feature_kinds: tuple
    tensor_names: tuple
    shapes: dict
    unit_map: dict
    n_units: int
    column_scale: np.ndarray
    scale: str
    rows: np.ndarray
    summaries: dict = field(default_factory=dict)

    @property
    def n_steps(self):
        """Number of rows ``T``."""
        return self.X.shape[0]

    @property
    def n_features(self):
        """Number of columns ``d = n_units * m``."""
        return self.X.shape[1]

    @property
    def features_per_unit(self):
        """``m``: feature types per unit."""
        return len(self.feature_kinds)

    @property
    def column_unit(self):
        """Unit of every column, shape (d,)."""
        return np.repeat(np.arange(self.n_units), self.features_per_unit)

    @property
    def fit_intercept(self):
        """Whether the restricted model has an intercept."""
        return "const" in self.restricted_names

    def unit_norms(self, values):
        """Euclidean norm of per-column ``values`` over each unit's columns.

        Parameters
        ----------
        values : array-like of shape (d,)

        Returns
        -------
        ndarray of shape (n_units,)
            ``|values|`` itself when every unit is one column.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n_features,):
            raise ValueError(f"values has shape {values.shape}, expected ({self.n_features},)")
        return np.sqrt(np.sum(values.reshape(self.n_units, -1) ** 2, axis=1))

    def unit_sums(self, tensors):
        """Sum of per-parameter values over each unit's (alive) members.

        Parameters
        ----------
        tensors : mapping of str to ndarray
            A value per parameter, shaped like each tensor of the design.

        Returns
        -------
        ndarray of shape (n_units,)
            The values themselves for parameter units; e.g. a filter's L1 norm
            for ``|θ|`` and filter units.
        """
        total = np.zeros(self.n_units)
        for name in self.tensor_names:
            unit = self.unit_map[name]
            inside = unit >= 0
            flat = np.asarray(tensors[name], dtype=np.float64).reshape(-1)
            if flat.size != unit.size:
                raise ValueError(f"tensors[{name!r}] has {flat.size} entries, expected {unit.size}")
            total += np.bincount(unit[inside], weights=flat[inside], minlength=self.n_units)
        return total

    def to_tensors(self, values, fill=0.0):
        """Scatter per-unit ``values`` back to arrays shaped like the tensors.

        Parameters
        ----------
        values : array-like of shape (n_units,)
        fill : scalar
            Value of the entries that are not in the design (pruned ones).

        Returns
        -------
        dict of str to ndarray
            One array per tensor, of the tensor's shape; every member of a
            unit gets the unit's value.
        """
        values = np.asarray(values)
        if values.shape != (self.n_units,):
            raise ValueError(f"values has shape {values.shape}, expected ({self.n_units},)")
        out = {}
        for name in self.tensor_names:
            unit = self.unit_map[name]
            flat = np.full(unit.size, fill, dtype=np.result_type(values, fill))
            inside = unit >= 0
            flat[inside] = values[unit[inside]]
            out[name] = flat.reshape(self.shapes[name])
        return out

    def partialled(self, rows=None):
        """``(X, y, fit_intercept)`` for a lasso whose restricted regressors are unpenalised.

        By Frisch–Waugh–Lovell, minimising ``||y - Z b - X γ||² + pen(γ)`` over
        ``b`` and ``γ`` gives the same ``γ`` as the penalised regression of
        ``M_Z y`` on ``M_Z X`` (``M_Z`` the projection off ``Z``).  An
        intercept alone is left to the solver's implicit centring (no copy);
        lagged losses are projected out here (one float64 copy of ``X``).

        Parameters
        ----------
        rows : array-like of int, optional
            Use only these rows (the projection too); all by default.

        Raises
        ------
        ValueError
            For a lazy design (``granger_design(..., lazy=True)``) with ``rows``
            or lagged losses: both need a copy of ``X``.
        """
        X, y, Z = self.X, self.y, self.Z
        intercept_only = all(n == "const" for n in self.restricted_names)
        if hasattr(X, "column_blocks") and (rows is not None or not intercept_only):  # lazy
            raise ValueError("a lazy design's X cannot be cut to rows or projected off lagged "
                             "losses without a copy of X: build the design in memory or to a file "
                             "(out=), or without lags")
        xp = get_namespace(X)  # a design built from a device store is on the device
        with contextlib.nullcontext() if xp is np else X.device:
            if rows is not None:
                rows = np.asarray(rows)
                X, y, Z = X[xp.asarray(rows)], y[rows], Z[rows]
            if intercept_only:
                return X, y, self.fit_intercept
            Q, _ = np.linalg.qr(Z)
            on_X = xp.asarray(Q)
            return X - on_X @ (on_X.T @ X), y - Q @ (Q.T @ y), False


def loss_changes(loss_before, loss_after, loss_change="same_batch"):
    """Loss change per step and the steps they pair with.

    Parameters
    ----------
    loss_before, loss_after : ndarray of shape (T,)
        Minibatch loss before and after each step.
    loss_change : {"same_batch", "consecutive"}
        ``"same_batch"``: ``ΔL^t = loss_after[t] - loss_before[t]`` (T rows).
        ``"consecutive"``: ``ΔL^t = loss_before[t+1] - loss_before[t]``, the
        change across consecutive minibatches, paired with step ``t`` (T-1 rows).

    Returns
    -------
    y : ndarray of shape (n_rows,)
        ``y[t]`` pairs with step ``t`` of the trajectory.
    """
    if loss_change == "same_batch":
        y = np.asarray(loss_after, dtype=np.float64) - np.asarray(loss_before, dtype=np.float64)
    elif loss_change == "consecutive":
        y = np.diff(np.asarray(loss_before, dtype=np.float64))
    else:
        raise ValueError(f"loss_change must be one of {LOSS_CHANGES}, got {loss_change!r}")
    if not np.all(np.isfinite(y)):
        raise ValueError(
            f"loss changes are not finite under loss_change={loss_change!r}; "
            "a trajectory recorded with loss_change='consecutive' has no after-step losses"
        )
    return y


def step_features(current, previous, kinds):
    """The features of one or many steps, per feature type.

    Parameters
    ----------
    current, previous : ndarray of the same shape
        ``Δθ^t`` and ``Δθ^{t-1}`` (``previous`` is unused by ``"dtheta_sq"``);
        NumPy or CuPy.
    kinds : tuple of str
        Feature types, from :data:`FEATURE_SETS`.

    Returns
    -------
    list of ndarray
        One float64 array shaped like ``current`` per feature type, in its namespace.
    """
    xp = get_namespace(current, previous)
    current = xp.asarray(current, dtype=xp.float64)
    out = []
    for kind in kinds:
        if kind == "dtheta_sq":
            out.append(current * current)
        elif kind == "dtheta_prev_sq":
            prev = xp.asarray(previous, dtype=xp.float64)
            out.append(prev * prev)
        elif kind == "dtheta_cross":
            out.append(current * xp.asarray(previous, dtype=xp.float64))
        else:
            raise ValueError(f"unknown feature type {kind!r}; known: {FEATURE_SETS['momentum']}")
    return out


def needs_previous(kinds):
    """Whether the feature types ``kinds`` use ``Δθ^{t-1}`` (the momentum features)."""
    return any(kind != "dtheta_sq" for kind in kinds)


def step_window(rows, lagged):
    """``(first, stop)``: the recorded steps that the design rows ``rows`` (consecutive) read,
    from ``rows[0] - 1`` when ``lagged`` (``Δθ^{t-1}``) or ``rows[0]``, to ``rows[-1]``."""
    return int(rows[0]) - (1 if lagged else 0), int(rows[-1]) + 1


def current_and_previous(steps, first, rows, lagged, eta=None):
    """``(Δθ^t, Δθ^{t-1})`` of the design rows ``rows`` from ``steps``, one tensor's steps
    from step ``first`` on (shape (n, k)), divided by the step sizes ``eta`` (shape
    (n_steps,)) when given.  Slices of ``steps`` (or of its division); ``Δθ^{t-1}`` is
    None unless ``lagged``."""
    if eta is not None:
        steps = steps / get_namespace(steps).asarray(eta[first:first + len(steps), None])
    start = int(rows[0]) - first
    current = steps[start:start + len(rows)]
    previous = steps[start - 1:start - 1 + len(rows)] if lagged else None
    return current, previous


def first_row(features, lags):
    """Index of the first step that has all its lags (and previous step)."""
    return max(int(lags) - 1, 1 if features == "momentum" else 0, 0)


def n_design_rows(n_steps, features="vanilla", lags=0, loss_change="same_batch"):
    """Rows ``T`` of the design of a trajectory of ``n_steps`` steps."""
    return max(n_steps - (loss_change == "consecutive") - first_row(features, lags), 0)


def restricted_columns(loss_before, rows, lags, restricted):
    """Restricted regressors ``Z`` of the given rows and their names.

    Parameters
    ----------
    loss_before : ndarray of shape (n_steps,)
    rows : ndarray of int, shape (T,)
    lags : int >= 0
    restricted : {"intercept", "none"}

    Returns
    -------
    Z : ndarray of shape (T, k)
    names : tuple of str
    """
    columns, names = [], []
    if restricted == "intercept":
        columns.append(np.ones(len(rows)))
        names.append("const")
    for j in range(1, lags + 1):
        columns.append(np.asarray(loss_before, dtype=np.float64)[rows - j + 1])
        names.append(f"loss_lag{j}")
    Z = np.column_stack(columns) if columns else np.empty((len(rows), 0))
    return Z, tuple(names)


def tensor_names(tensors, shapes):
    """``tensors`` as a tuple of distinct names of ``shapes`` (all of them when None)."""
    if tensors is None:
        return tuple(shapes)
    if isinstance(tensors, str):
        raise ValueError(f"tensors must be a sequence of tensor names, got the string {tensors!r}")
    names = tuple(tensors)
    if not names:
        raise ValueError("tensors is empty: a design needs at least one tensor")
    if len(set(names)) != len(names):
        raise ValueError(f"tensors {list(names)} names a tensor twice")
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(f"tensors {unknown} were not recorded; recorded: {list(shapes)}")
    return names


def check_lags(lags):
    """``lags`` as an int after checking it is a non-negative integer."""
    try:
        if isinstance(lags, bool):
            raise TypeError
        value = operator.index(lags)
    except TypeError:
        raise ValueError(f"lags must be a non-negative integer, got {lags!r}") from None
    if value < 0:
        raise ValueError(f"lags must be a non-negative integer, got {lags!r}")
    return value


def unit_layout(shapes, names, alive=None, groups=None):
    """Number the units of a design and map every tensor entry to its unit.

    Parameters
    ----------
    shapes : mapping of str to tuple
    names : sequence of str
        Tensors of the design.
    alive : mapping of str to bool ndarray, optional
        Entries still unpruned; the others belong to no unit.
    groups : mapping of str to int ndarray, optional
        Weight-shared group id (>= 0) of every entry, per tensor; ids are
        shared across tensors (a filter spans its weight and bias).  None:
        every alive parameter is its own unit.

    Returns
    -------
    unit_map : dict of str to ndarray of int
        Flat unit index per entry, ``-1`` outside the design.
    n_units : int
    """
    unit_map, ids = {}, {}
    for name in names:
        size = int(np.prod(shapes[name]))
        keep = np.ones(size, dtype=bool) if alive is None else _flat_mask(alive, "alive", name, shapes[name])
        if groups is None:
            ids[name] = np.where(keep, 0, -1)
        else:
            gid = _flat_groups(groups, name, shapes[name])
            ids[name] = np.where(keep, gid, -1)
    if groups is None:
        offset = 0
        for name in names:
            keep = ids[name] >= 0
            unit = np.full(keep.size, -1, dtype=np.int64)
            unit[keep] = offset + np.arange(int(keep.sum()))
            unit_map[name] = unit
            offset += int(keep.sum())
        return unit_map, offset
    present = np.unique(np.concatenate([i[i >= 0] for i in ids.values()]))
    for name in names:
        unit = np.full(ids[name].size, -1, dtype=np.int64)
        keep = ids[name] >= 0
        unit[keep] = np.searchsorted(present, ids[name][keep])
        unit_map[name] = unit
    return unit_map, int(present.size)


def granger_design(trajectory, tensors=None, *, features="vanilla", lags=0, alive=None,
                   groups=None, restricted="intercept", scale="raw", loss_change="same_batch",
                   step_size="ignore", out=None, lazy=False):
    """Build the Granger design of a recorded trajectory.

    Parameters
    ----------
    trajectory : Trajectory
        A recorded trajectory (any object with ``shapes``, ``n_steps``,
        ``losses()`` and ``deltas(name)``, e.g.
        :class:`granger_prune.record.InMemoryTrajectory`).
    tensors : sequence of str, optional
        Tensors whose parameters make the units (one layer, or several for a
        global problem).  All recorded tensors by default.
    features : {"vanilla", "momentum"}
        The feature set, see the module docstring.
    lags : int >= 0
        Lagged losses in the restricted model.
    alive : mapping of str to bool ndarray, optional
        Per tensor, which parameters are still unpruned; only those enter the
        units.  All parameters by default.
    groups : mapping of str to int ndarray, optional
        Weight-shared groups (see :func:`unit_layout`); one unit per group.
    restricted : {"intercept", "none"}
        Whether the restricted model has an intercept.
    scale : {"raw", "layer", "column"}
        Column scaling, see the module docstring.
    loss_change : {"same_batch", "consecutive"}
        How ``ΔL`` is formed, see :func:`loss_changes`.
    step_size : {"ignore", "divide"}
        Fit ``ΔL^t`` on ``(Δθ^t)²`` (default), or ``ΔL^t / η_t`` on
        ``(Δθ^t / η_t)²`` with the recorded step sizes (module docstring).
    out : path, optional
        Write ``X`` block by block to a float32 ``.npy`` file there and return
        its read-only memory map (for designs larger than memory).
    lazy : bool
        Keep no copy of ``X`` at all: ``X`` is a
        :class:`~granger_prune.design.lazy.LazyFeatures` that computes its
        columns from the trajectory store whenever they are read (every pass
        over ``X`` is a pass over the store).  One pass over the store now,
        for the row summaries and the column scale.  Units must be single
        parameters (no ``groups``); not with ``out``.

    Returns
    -------
    GrangerDesign

    Raises
    ------
    ValueError
        On an unknown tensor, feature set or option; when the lags leave fewer
        than 3 rows (the message names ``lags`` and ``n_steps``); when
        ``alive`` or ``groups`` lacks a tensor or has the wrong shape; when no
        parameter is alive.
    """
    check_choice("features", features, tuple(FEATURE_SETS))
    check_choice("restricted", restricted, RESTRICTED_MODELS)
    check_choice("scale", scale, SCALES)
    check_choice("step_size", step_size, STEP_SIZES)
    lags = check_lags(lags)
    names = tensor_names(tensors, trajectory.shapes)

    loss_before, loss_after = trajectory.losses()
    y_all = loss_changes(loss_before, loss_after, loss_change=loss_change)
    eta = shared_step_sizes(trajectory, names) if step_size == "divide" else None
    if eta is not None:
        y_all = y_all / eta[:len(y_all)]
    rows = np.arange(first_row(features, lags), len(y_all))
    if n_design_rows(trajectory.n_steps, features, lags, loss_change) < MIN_ROWS:
        raise ValueError(
            f"the trajectory has n_steps={trajectory.n_steps}, which with features={features!r} "
            f"and lags={lags} leaves {len(rows)} rows; a Granger design needs at least {MIN_ROWS}"
        )
    kinds = FEATURE_SETS[features]
    unit_map, n_units = unit_layout(trajectory.shapes, names, alive, groups)
    if n_units == 0:
        raise ValueError(f"no alive parameters in tensors {list(names)}: nothing to regress on")

    moved = set()
    if lazy:
        if out is not None or groups is not None:
            raise ValueError("lazy=True keeps no copy of X and has one unit per parameter: "
                             f"it takes neither out= (got {out!r}) nor groups=")
        if _on_cuda(trajectory):
            raise ValueError("lazy=True reads a store on the host; this trajectory's steps are on "
                             "the device, where the design is built whole: use lazy=False")
        X, sq_steps, n_params, column_scale = _lazy_features(trajectory, names, unit_map, kinds, rows,
                                                             eta, scale, moved)
    elif out is None:
        with _steps_device(trajectory) as xp:
            X, sq_steps, n_params = _in_memory_features(xp, trajectory, names, unit_map, n_units,
                                                        kinds, rows, eta, moved)
            column_scale = _column_scale(X, scale)
            X /= get_namespace(X).asarray(column_scale)
    else:
        with _steps_device(trajectory):
            X, sq_steps, n_params, column_scale = _unit_features_to_file(
                out, trajectory, names, unit_map, n_units, kinds, rows, eta, scale, moved)
    _warn_unmoved(names, unit_map, moved, len(rows))
    Z, restricted_names = restricted_columns(loss_before, rows, lags, restricted)
    return GrangerDesign(
        y=y_all[rows], X=X, Z=Z, restricted_names=restricted_names, feature_kinds=kinds,
        tensor_names=names, shapes={n: tuple(trajectory.shapes[n]) for n in names},
        unit_map=unit_map, n_units=n_units, column_scale=column_scale, scale=scale, rows=rows,
        summaries=_summaries(trajectory, names, rows, sq_steps / n_params),
    )


#: Entries of one block of rows of a design written to a file (float64 while formed).
DESIGN_BLOCK_ENTRIES = 1 << 24


def _warn_unmoved(names, unit_map, moved, n_rows):
    for name in names:
        if name not in moved and np.any(unit_map[name] >= 0):
            warnings.warn(
                f"tensor {name!r} did not change in any of the {n_rows} design rows (every Δθ is 0: "
                "frozen, or no gradient reaches it): its features are 0, so its F-tests are "
                "degenerate (F = NaN, p = 1) and its lasso coefficients 0; no data speaks for or "
                "against any of its parameters", DegenerateLayerWarning, stacklevel=3)


def _on_cuda(trajectory):
    """Whether a store keeps its steps on a CUDA device (a DeviceTrajectory there)."""
    return getattr(getattr(trajectory, "device", None), "type", None) == "cuda"


def _steps_device(trajectory):
    """Context in which CuPy's current device is that of a store's steps when they are
    CuPy arrays (a model on cuda:N: every array the design allocates must be there);
    yields the array module of the steps (``numpy`` for a host store, or a CUDA one
    where CuPy cannot run, whose reads are host copies).  Asks the store where, without
    reading its steps."""
    from ..placement import cupy_works, running_on, steps_device  # placement imports design

    if _on_cuda(trajectory) and cupy_works():
        return running_on(steps_device(trajectory))
    return contextlib.nullcontext(np)


def _in_memory_features(xp, trajectory, names, unit_map, n_units, kinds, rows, eta, moved):
    """:func:`_unit_features`; for a store whose steps are CuPy arrays (``xp``, what
    :func:`_steps_device` yields, within it), a block of rows at a time
    (:data:`DESIGN_BLOCK_ENTRIES`), so that the float64 temporaries of the features stay
    small beside ``X``."""
    if xp is np:
        return _unit_features(trajectory, names, unit_map, n_units, kinds, rows, eta, moved)
    d = n_units * len(kinds)
    step = max(1, DESIGN_BLOCK_ENTRIES // max(d, 1))
    sq_steps, n_params = np.zeros(len(rows)), 0
    X = xp.empty((len(rows), d))
    for start in range(0, len(rows), step):
        block, sq, n_params = _unit_features(trajectory, names, unit_map, n_units, kinds,
                                             rows[start:start + step], eta, moved)
        X[start:start + block.shape[0]] = block
        sq_steps[start:start + block.shape[0]] = sq
    return X, sq_steps, n_params


def _unit_features(trajectory, names, unit_map, n_units, kinds, rows, eta, moved=None):
    """``X`` (len(rows), n_units * m) in float64 for the design rows ``rows`` (consecutive),
    the sum over parameters of ``(Δθ^t)²`` per row, and the number of parameters; the names
    of the tensors with a non-zero step in these rows are added to the set ``moved``.

    Reads the steps ``rows[0] - 1`` (momentum features) to ``rows[-1]`` of each tensor only.
    """
    lagged = needs_previous(kinds)
    first, stop = step_window(rows, lagged)
    X = None  # in the namespace of the steps: on the device for a device store
    sq_steps, n_params = np.zeros(len(rows)), 0
    for name in names:
        unit = unit_map[name]
        idx = np.flatnonzero(unit >= 0)
        if idx.size == 0:
            continue
        delta = trajectory.deltas(name)[first:stop]
        xp = get_namespace(delta)
        delta = xp.asarray(delta)
        if X is None:
            X = xp.zeros((len(rows), n_units, len(kinds)))
        if idx.size < delta.shape[1]:  # a gather only when some parameters are left out
            delta = delta[:, xp.asarray(idx)]
        current, previous = current_and_previous(delta, first, rows, lagged, eta)
        add_unit_features(X, current, previous, unit[idx], kinds)
        row_sq = to_numpy(xp.einsum("ij,ij->i", current, current, dtype=xp.float64))
        sq_steps += row_sq
        n_params += idx.size
        if moved is not None and np.any(row_sq > 0):
            moved.add(name)
    return X.reshape(len(rows), n_units * len(kinds)), sq_steps, n_params


def _unit_features_to_file(path, trajectory, names, unit_map, n_units, kinds, rows, eta, scale, moved):
    """:func:`_unit_features` written block by block to a float32 ``.npy`` at ``path``,
    scaled; returns the read-only memory map, the row sums, the parameter count and the
    column scale."""
    d = n_units * len(kinds)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(rows), d))
    sq_steps, n_params = np.zeros(len(rows)), 0
    col_sq = np.zeros(d)
    step = max(1, DESIGN_BLOCK_ENTRIES // max(d, 1))
    for start in range(0, len(rows), step):
        block, sq, n_params = _unit_features(trajectory, names, unit_map, n_units, kinds,
                                             rows[start:start + step], eta, moved)
        block = to_numpy(block)  # from a device store
        X[start:start + block.shape[0]] = block
        sq_steps[start:start + block.shape[0]] = sq
        if scale != "raw":
            col_sq += np.einsum("ij,ij->j", block, block)
    if scale == "raw":
        column_scale = np.ones(d)
    else:
        column_scale = _scale_from_column_sq(col_sq, len(rows), scale)
        for start in range(0, len(rows), step):
            X[start:start + step] /= column_scale.astype(np.float32)
    X.flush()
    del X
    return np.load(path, mmap_mode="r"), sq_steps, n_params, column_scale


def _lazy_features(trajectory, names, unit_map, kinds, rows, eta, scale, moved):
    """``X`` as :class:`~granger_prune.design.lazy.LazyFeatures`, after the one pass over the
    store that gives the row sums, the parameter count and the column scale."""
    from .lazy import LazyFeatures

    raw = LazyFeatures(trajectory, names, unit_map, kinds, rows, eta)
    sq_steps, col_sq, tensors_moved = raw.raw_summaries(exact=scale != "raw")
    moved.update(tensors_moved)
    if scale == "raw":
        return raw, sq_steps, raw.n_units, np.ones(raw.shape[1])
    column_scale = _scale_from_column_sq(col_sq, len(rows), scale)
    return (LazyFeatures(trajectory, names, unit_map, kinds, rows, eta, column_scale), sq_steps,
            raw.n_units, column_scale)


def _summaries(trajectory, names, rows, mean_sq_step):
    """The named per-row summaries of :class:`GrangerDesign` (those recorded for every row)."""
    out = {"mean_sq_step": mean_sq_step}
    eta = np.asarray(trajectory.step_sizes(names[0]), dtype=np.float64)
    if np.all(np.isfinite(eta[rows])) and _rate_differing_from(trajectory, names, eta, rows) is None:
        out["learning_rate"] = eta[rows]
    norms = np.asarray(trajectory.grad_norms(), dtype=np.float64)[rows]
    if np.all(np.isfinite(norms)):
        out["grad_norm"] = norms
    return out


def shared_step_sizes(trajectory, names):
    """The recorded ``η_t`` (shape (n_steps,)) that all tensors ``names`` share.

    Raises ``ValueError`` when a step size is missing, not positive, or differs
    between the tensors (they sit in parameter groups on different schedules)."""
    eta = trajectory.step_sizes(names[0])
    if not np.all(np.isfinite(eta) & (eta > 0)):
        raise ValueError(f"step_size='divide' needs the positive learning rate of every recorded step; "
                         f"{names[0]!r} has {np.count_nonzero(~(np.isfinite(eta) & (eta > 0)))} steps "
                         "without one (record with TrajectoryRecorder, which keeps them)")
    name = _rate_differing_from(trajectory, names, eta)
    if name is not None:
        raise ValueError(f"step_size='divide' needs one learning rate per step for the tensors of a "
                         f"design; {names[0]!r} and {name!r} are in groups with different rates: "
                         "fit them in separate problems (scope='layer')")
    return eta


def _rate_differing_from(trajectory, names, eta, rows=slice(None)):
    """The first tensor of ``names`` whose recorded step sizes on ``rows`` are not ``eta``'s,
    or None."""
    return next((name for name in names[1:]
                 if not np.array_equal(np.asarray(trajectory.step_sizes(name))[rows], eta[rows])),
                None)


def vanilla_design(trajectory, tensors=None, **options):
    """:func:`granger_design` with ``features="vanilla"`` (``y = ΔL``, ``X = (Δθ)²``)."""
    return granger_design(trajectory, tensors, features="vanilla", **options)


def momentum_design(trajectory, tensors=None, *, lags=2, **options):
    """:func:`granger_design` with ``features="momentum"`` and, by default,
    seed 001's two lagged losses in the restricted model."""
    return granger_design(trajectory, tensors, features="momentum", lags=lags, **options)


def add_unit_features(out, current, previous, unit, kinds):
    """Add every parameter's features to its unit's: ``out[..., u, i] += Σ_{k in u} f_i(k)``.

    Parameters
    ----------
    out : ndarray of shape (..., n_units, m)
    current, previous : ndarray of shape (..., n)
        ``Δθ^t`` and ``Δθ^{t-1}`` of ``n`` parameters (see :func:`step_features`).
    unit : ndarray of shape (n,), int
        The unit of each parameter.
    kinds : tuple of str
        The ``m`` feature types.
    """
    for i, feature in enumerate(step_features(current, previous, kinds)):
        add_to_units(out[..., i], feature, unit)


def add_to_units(out, values, unit):
    """``out[..., u] += Σ_{i: unit[i] = u} values[..., i]`` (unit-sorted sums, no scatter-add).

    Parameters
    ----------
    out : ndarray of shape (..., n_units)
    values : ndarray of shape (..., n)
        NumPy, or CuPy with ``out``.
    unit : ndarray of shape (n,), int
        On the host.
    """
    if unit.size == 0:
        return
    xp = get_namespace(out, values)
    if unit[-1] - unit[0] == unit.size - 1 and np.all(unit[1:] > unit[:-1]):
        out[..., unit[0]:unit[-1] + 1] += values  # consecutive units: a slice, no gather
        return
    if np.all(unit[1:] > unit[:-1]):  # one member per unit: plain columns
        out[..., xp.asarray(unit)] += values
        return
    if xp is not np:  # no reduceat on the device: a scatter-add into units along axis 0
        sums = xp.zeros((out.shape[-1],) + values.shape[:-1], dtype=xp.float64)
        xp.add.at(sums, xp.asarray(unit), xp.moveaxis(values, -1, 0))
        out += xp.moveaxis(sums, 0, -1)
        return
    order = np.argsort(unit, kind="stable")
    sorted_unit = unit[order]
    starts = np.flatnonzero(np.r_[True, sorted_unit[1:] != sorted_unit[:-1]])
    out[..., sorted_unit[starts]] += np.add.reduceat(values[..., order], starts, axis=-1)


def _flat_mask(masks, what, name, shape):
    if name not in masks:
        raise ValueError(f"{what} has no mask for tensor {name!r}")
    mask = np.asarray(masks[name], dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"{what}[{name!r}] has shape {mask.shape}, expected {tuple(shape)}")
    return mask.reshape(-1)


def _flat_groups(groups, name, shape):
    if name not in groups:
        raise ValueError(f"groups does not cover tensor {name!r}: every tensor of the design "
                         "needs a group id per entry")
    gid = np.asarray(groups[name])
    if gid.shape != tuple(shape) or not np.issubdtype(gid.dtype, np.integer):
        raise ValueError(f"groups[{name!r}] must be an integer array of shape {tuple(shape)}, "
                         f"got {gid.dtype} of shape {gid.shape}")
    if gid.size and gid.min() < 0:
        raise ValueError(f"groups[{name!r}] has negative ids; every entry needs a group id >= 0")
    return gid.reshape(-1).astype(np.int64)


def _column_scale(X, scale):
    """The host column scale (d,) of ``scale`` for an in-memory ``X``; on the device from
    the columns' sums of squares a block of rows at a time (no squared copy of X)."""
    d = X.shape[1]
    if scale == "raw":
        return np.ones(d)
    xp = get_namespace(X)
    if xp is np:
        return _scale_from_mean_squares(np.mean(X * X) if scale == "layer" else np.mean(X * X, axis=0), d)
    step = max(1, DESIGN_BLOCK_ENTRIES // max(d, 1))
    with X.device:
        col_sq = sum(xp.einsum("ij,ij->j", X[a:a + step], X[a:a + step]) for a in range(0, X.shape[0], step))
        return _scale_from_column_sq(to_numpy(col_sq), X.shape[0], scale)


def _scale_from_column_sq(col_sq, n_rows, scale):
    """The column scale (d,) of ``scale`` (``"layer"`` or ``"column"``) from the columns'
    sums of squares ``col_sq`` (d,) over ``n_rows`` rows."""
    d = col_sq.size
    return _scale_from_mean_squares(col_sq.sum() / (n_rows * d) if scale == "layer" else col_sq / n_rows, d)


def _scale_from_mean_squares(mean_sq, d):
    """The column scale (d,) of a layer's (scalar) or the columns' mean squares: their root,
    1 where it is 0."""
    rms = np.array(np.broadcast_to(np.sqrt(mean_sq), (d,)))
    rms[rms == 0] = 1.0
    return rms
