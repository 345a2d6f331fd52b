"""Granger designs built from a recorded trajectory.

The vanilla design (seed 000 eq. 7/9, seed 001 eq. 3) regresses the per-step
loss change on the squared parameter changes::

    restricted:   ΔL^t = c + ε^t                      (or ΔL^t = ε^t)
    unrestricted: ΔL^t = c + Σ_k γ_k (Δθ_k^t)² + ε^t

so that ``y = ΔL`` has shape (T,) and ``X = (Δθ)²`` has shape (T, d), one column
per surviving parameter of the chosen tensors.  Every column maps back to
``(tensor name, flat index)``.

Scale matters here (DESIGN §2): ``(Δθ)²`` is ~1e-8…1e-14 and how far a
parameter moved is part of the causal signal.  ``scale="raw"`` (default) keeps
the columns as they are; ``scale="layer"`` divides every column by one factor
(the RMS of all entries), which changes only the units of α; ``scale="column"``
gives every column unit RMS, which changes the method itself (each parameter's
step size is discarded) and is offered to study that choice.  With α expressed
relative to ``α_max = ||Xᵀy||∞ / T`` the raw and layer scales select the same
support.

The vanilla model comes from the first-order Taylor step of *plain* gradient
descent; under SGD with momentum it is an approximation (the momentum design of
seed 000 appendix A adds lagged features and losses).

This module works on plain NumPy arrays and never imports torch.
"""

from dataclasses import dataclass

import numpy as np

from ._checks import check_choice

LOSS_CHANGES = ("same_batch", "consecutive")
RESTRICTED_MODELS = ("intercept", "none")
SCALES = ("raw", "layer", "column")
MIN_ROWS = 3


@dataclass(frozen=True)
class GrangerDesign:
    """A Granger regression problem and the map from its columns to parameters.

    Attributes
    ----------
    y : ndarray of shape (T,)
        Loss changes ``ΔL``.
    X : ndarray of shape (T, d)
        Features of the unrestricted model (scaled as ``scale`` says).
    Z : ndarray of shape (T, k)
        Regressors of the restricted model: a column of ones for an intercept,
        or no column (k = 0).
    tensor_names : tuple of str
        The tensors whose parameters are columns of ``X``.
    feature_tensor : ndarray of shape (d,), int
        Index into ``tensor_names`` of each column.
    feature_index : ndarray of shape (d,), int
        Flat index inside its tensor of each column.
    shapes : dict of str to tuple
        Shape of every tensor in ``tensor_names``.
    column_scale : ndarray of shape (d,)
        ``X[:, j] = X_raw[:, j] / column_scale[j]``; a coefficient on the raw
        scale is ``coef[j] / column_scale[j]``.
    scale : str
        The scaling that was applied.
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    tensor_names: tuple
    feature_tensor: np.ndarray
    feature_index: np.ndarray
    shapes: dict
    column_scale: np.ndarray
    scale: str

    @property
    def n_steps(self):
        """Number of rows ``T``."""
        return self.X.shape[0]

    @property
    def n_features(self):
        """Number of columns ``d``."""
        return self.X.shape[1]

    @property
    def fit_intercept(self):
        """Whether the restricted model has an intercept."""
        return self.Z.shape[1] == 1

    def to_tensors(self, values, fill=0.0):
        """Scatter per-feature ``values`` back to arrays shaped like the tensors.

        Parameters
        ----------
        values : array-like of shape (d,)
        fill : scalar
            Value of the entries that are not columns of the design (pruned ones).

        Returns
        -------
        dict of str to ndarray
            One array per tensor, of the tensor's shape.
        """
        values = np.asarray(values)
        if values.shape != (self.n_features,):
            raise ValueError(f"values has shape {values.shape}, expected ({self.n_features},)")
        out = {}
        for i, name in enumerate(self.tensor_names):
            flat = np.full(int(np.prod(self.shapes[name])), fill, dtype=np.result_type(values, fill))
            cols = self.feature_tensor == i
            flat[self.feature_index[cols]] = values[cols]
            out[name] = flat.reshape(self.shapes[name])
        return out


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


def vanilla_design(trajectory, tensors=None, *, alive=None, restricted="intercept",
                   scale="raw", loss_change="same_batch"):
    """Build the vanilla Granger design ``y = ΔL``, ``X = (Δθ)²``.

    Parameters
    ----------
    trajectory : Trajectory
        A recorded trajectory (any object with ``shapes``, ``losses()`` and
        ``deltas(name)``, e.g. :class:`granger_prune.trajectory.InMemoryTrajectory`).
    tensors : sequence of str, optional
        Tensors whose parameters become columns (one layer, or several for a
        global problem).  All recorded tensors by default.
    alive : mapping of str to bool ndarray, optional
        Per tensor, which parameters are still unpruned; only those become
        columns.  All parameters by default.
    restricted : {"intercept", "none"}
        The restricted model: ``ΔL = c + ε`` or ``ΔL = ε``.
    scale : {"raw", "layer", "column"}
        Column scaling, see the module docstring.
    loss_change : {"same_batch", "consecutive"}
        How ``ΔL`` is formed, see :func:`loss_changes`.

    Returns
    -------
    GrangerDesign
    """
    check_choice("restricted", restricted, RESTRICTED_MODELS)
    check_choice("scale", scale, SCALES)
    names = tuple(trajectory.shapes) if tensors is None else tuple(tensors)
    if not names:
        raise ValueError("tensors is empty: a design needs at least one tensor")
    unknown = [n for n in names if n not in trajectory.shapes]
    if unknown:
        raise ValueError(f"tensors {unknown} were not recorded; recorded: {list(trajectory.shapes)}")

    y = loss_changes(*trajectory.losses(), loss_change=loss_change)
    if len(y) < MIN_ROWS:
        raise ValueError(
            f"the trajectory has n_steps={trajectory.n_steps}, giving {len(y)} rows; "
            f"a Granger design needs at least {MIN_ROWS}"
        )

    blocks, feature_tensor, feature_index = [], [], []
    for i, name in enumerate(names):
        size = int(np.prod(trajectory.shapes[name]))
        keep = np.ones(size, dtype=bool) if alive is None else _alive_flat(alive, name, trajectory.shapes[name])
        idx = np.flatnonzero(keep)
        delta = trajectory.deltas(name)[:len(y)][:, idx].astype(np.float64)
        blocks.append(delta * delta)
        feature_tensor.append(np.full(idx.size, i, dtype=np.intp))
        feature_index.append(idx)
    X = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    if X.shape[1] == 0:
        raise ValueError(f"no alive parameters in tensors {list(names)}: nothing to regress on")

    column_scale = _column_scale(X, scale)
    X /= column_scale
    Z = np.ones((len(y), 1)) if restricted == "intercept" else np.empty((len(y), 0))
    return GrangerDesign(
        y=y, X=X, Z=Z, tensor_names=names,
        feature_tensor=np.concatenate(feature_tensor), feature_index=np.concatenate(feature_index),
        shapes={n: tuple(trajectory.shapes[n]) for n in names},
        column_scale=column_scale, scale=scale,
    )


def _alive_flat(alive, name, shape):
    if name not in alive:
        raise ValueError(f"alive has no mask for tensor {name!r}")
    mask = np.asarray(alive[name], dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"alive[{name!r}] has shape {mask.shape}, expected {tuple(shape)}")
    return mask.reshape(-1)


def _column_scale(X, scale):
    d = X.shape[1]
    if scale == "raw":
        return np.ones(d)
    if scale == "layer":
        rms = np.sqrt(np.mean(X * X))
        return np.full(d, rms if rms > 0 else 1.0)
    rms = np.sqrt(np.mean(X * X, axis=0))
    rms[rms == 0] = 1.0
    return rms
