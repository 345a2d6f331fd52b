"""Granger F-tests from sufficient statistics accumulated while training.

Every unit's test needs only the moments of its own ``m`` feature columns with
themselves, with the restricted regressors and with ``y``::

    C_xx (m × m),  C_xz (m × k'),  C_xy (m),  and, shared,  C_zz, C_zy, C_yy

(centred co-moments when the restricted model has an intercept, raw moments
without one; ``k'`` lagged losses).  By Frisch–Waugh–Lovell the test of unit
``u`` is then

    b_u = C_xy - C_xz C_zz⁻¹ C_zy,   G_u = C_xx - C_xz C_zz⁻¹ C_zx,
    SSR_r - SSR_f = b_uᵀ G_u⁻¹ b_u,   SSR_r = C_yy - C_yz C_zz⁻¹ C_zy,

exactly the quantities :func:`granger_prune.stats.nested_f_tests` computes
from the stored design, so :class:`StreamingGrangerTests` gives the same F
statistics and p-values with memory ``O(n_units · m · (m + k'))`` and no
stored trajectory.  A block of steps (:meth:`StreamingGrangerTests.append_block`,
what a recorder hands over) updates the moments at once: its own co-moments
about its means are merged by Chan, Golub and LeVeque's pairwise update (no
catastrophic cancellation from subtracting large raw sums).  The Durbin–Watson
statistic comes from the moments of the differenced ``(z, y)`` rows.

On a CUDA ``device`` the per-unit moments live in device memory (CuPy) and a
block's steps are accumulated there: CUDA tensors from a recorder reach CuPy
through DLPack without a copy, host blocks are copied once per block.

A multi-column (momentum) unit is solved by an unpivoted Cholesky
factorisation of ``G_u`` that drops a column whose pivot is below
``DEGENERACY`` of its raw squared norm, exactly as the stored Gram–Schmidt
drops it: a unit of dependent columns is tested on its rank (``df_num``), the
same rank as the stored path gives.

Accuracy: single-column units agree with the stored computation to about
1e-13 relative on recorded trajectories.  A multi-column unit is solved from
its Gram matrix, whose rounding error grows like ``eps · cond(M_Z X_u)²``; on a
recorded digits layer (MLP 64-16-10, 200 steps of SGD with momentum, momentum
design with 2 lags) the median disagreement with the stored (Gram–Schmidt)
computation was 1.5e-14 and the worst of 896 tested units 1.2e-6
(``|ΔF| / max(F, 1)``), with the same rank for every unit.
The moments are float64 sums of float64 products of the (float32) steps, so
features down to about 1e-77 keep their squares in range.
"""

import importlib

import numpy as np

from .._checks import check_choice
from ..backend import from_torch, is_torch_tensor, to_numpy
from ..design.granger import (FEATURE_SETS, LOSS_CHANGES, MIN_ROWS, RESTRICTED_MODELS,
                              add_unit_features, check_lags, first_row, needs_previous,
                              tensor_names, unit_layout)
from ..placement import running_on, statistics_device
from .ftests import SPAN_TOLERANCE, check_rows, f_test_results, quadratic_forms


class StreamingGrangerTests:
    """Per-unit Granger F-tests accumulated step by step, or a block of steps at a time.

    Takes the same steps as a :class:`granger_prune.record.Trajectory`
    (``append(loss_before, loss_after, deltas)`` and ``append_block``), so it can be the
    ``trajectory`` of a :class:`granger_prune.record.TrajectoryRecorder`;
    it keeps only moments, never the steps.  The rows, units and tests are
    those of :func:`granger_prune.design.granger_design` with the same
    arguments.

    Parameters
    ----------
    shapes : mapping of str to tuple of int
        The tensors whose steps are appended, with their shapes.
    tensors : sequence of str, optional
        The tensors whose parameters make the units (all by default).
    features : {"vanilla", "momentum"}
    lags : int >= 0
        Lagged losses in the restricted model.
    alive : mapping of str to bool ndarray, optional
        Parameters that enter the units (all by default).
    groups : mapping of str to int ndarray, optional
        Weight-shared groups, as for :func:`granger_prune.design.granger_design`.
    restricted : {"intercept", "none"}
    loss_change : {"same_batch", "consecutive"}
    device : None, "cpu", "cuda" or "cuda:N"
        Where the per-unit moments are kept and updated: the host, or a CUDA
        device through CuPy (without CuPy: the host, with a warning).  The
        recorder of a CUDA model hands such a store its blocks on the device.

    Attributes
    ----------
    unit_map : dict of str to ndarray of int
        Flat unit index of every entry, ``-1`` outside the tests.
    n_units : int
    n_rows : int
        Rows accumulated so far (steps with a loss change and all their lags).
    """

    def __init__(self, shapes, tensors=None, *, features="vanilla", lags=0, alive=None,
                 groups=None, restricted="intercept", loss_change="same_batch", device=None):
        check_choice("features", features, tuple(FEATURE_SETS))
        check_choice("restricted", restricted, RESTRICTED_MODELS)
        check_choice("loss_change", loss_change, LOSS_CHANGES)
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.tensor_names = tensor_names(tensors, self.shapes)
        self.features = features
        self.kinds = FEATURE_SETS[features]
        self.lags = check_lags(lags)
        self.center = restricted == "intercept"
        self.loss_change = loss_change
        self.device = statistics_device(device)
        self.unit_map, self.n_units = unit_layout(self.shapes, self.tensor_names, alive, groups)
        if self.n_units == 0:
            raise ValueError(f"no alive parameters in tensors {list(self.tensor_names)}")
        self._members = {n: np.flatnonzero(u >= 0) for n, u in self.unit_map.items()}
        m, k = len(self.kinds), self.lags
        self.n_steps = 0
        self.n_rows = 0
        with running_on(self.device) as xp:
            self._gather = {n: None if i.size == self.unit_map[n].size else xp.asarray(i)
                            for n, i in self._members.items()}  # None: every entry is in a unit
            # means and co-moments of x (per unit, on the device), w = (z', y) (shared, host)
            self._mx = xp.zeros((self.n_units, m))
            self._cxx = xp.zeros((self.n_units, m, m))
            self._cxw = xp.zeros((self.n_units, m, k + 1))
            self._sq = xp.zeros((self.n_units, m))  # raw sums of squares (degeneracy scale)
        self._mw = np.zeros(k + 1)
        self._cww = np.zeros((k + 1, k + 1))
        self._dww = np.zeros((k + 1, k + 1))  # raw moments of consecutive differences of w
        self._last_w = None
        self._before = []  # the last max(lags, 1) losses before a step
        self._previous = None  # the previous step's deltas (momentum)
        self._pending = None  # (x, z) of the last step, awaiting its consecutive loss change

    @property
    def xp(self):
        """The array module of the moments: ``numpy``, or ``cupy`` on a CUDA device."""
        return np if self.device is None else importlib.import_module("cupy")

    @property
    def takes_device_blocks(self):
        """Whether a recorder hands this store its blocks on the device (a GPU's moments)."""
        return self.device is not None

    def __repr__(self):
        return (f"{type(self).__name__}(n_units={self.n_units}, features={self.features!r}, "
                f"lags={self.lags}, n_rows={self.n_rows})")

    def append(self, loss_before, loss_after, deltas, step_sizes=None, grad_norm=float("nan")):
        """Add one optimizer step (see :meth:`granger_prune.record.Trajectory.append`).

        The streaming tests fit the papers' design (``ΔL`` on ``(Δθ)²``,
        ``step_size="ignore"``): ``step_sizes`` and ``grad_norm`` are accepted, as a
        recorder passes them, and not used.

        Raises
        ------
        ValueError
            On a missing or wrongly sized tensor, a non-finite step or a
            non-finite loss change; the statistics are then left unchanged.
        """
        self.append_block([loss_before], [loss_after], deltas)  # a block of one step

    def append_block(self, loss_before, loss_after, deltas, step_sizes=None, grad_norms=None):
        """Add ``n`` consecutive optimizer steps at once.

        Parameters
        ----------
        loss_before, loss_after : array-like of shape (n,)
        deltas : mapping of str to array of shape ``(n, *shape)``
            Each tensor's steps: NumPy, CuPy, or torch tensors (a CUDA tensor
            reaches CuPy through DLPack, without a copy); moved to the device of
            the tests (copied from the host once per block when that is a GPU).
        step_sizes, grad_norms
            Accepted, as a recorder passes them, and not used.

        The block's rows update the moments together (Chan, Golub and LeVeque's
        pairwise update of means and co-moments), one array operation per
        block instead of per step.

        Raises
        ------
        ValueError
            As :meth:`append`, or when the losses and the steps differ in length; the
            whole block is then left out.
        """
        with running_on(self.device) as xp:  # every array of the block on the moments' device
            self._append_block(loss_before, loss_after, deltas, xp)

    def _append_block(self, loss_before, loss_after, deltas, xp):
        t0 = self.n_steps
        loss_before = np.asarray(to_numpy(loss_before), dtype=np.float64).reshape(-1)
        loss_after = np.asarray(to_numpy(loss_after), dtype=np.float64).reshape(-1)
        n = loss_before.size
        if loss_after.size != n:
            raise ValueError(f"loss_after has {loss_after.size} steps, loss_before {n}")
        current = {}
        for name in self.tensor_names:
            if deltas.get(name) is None:
                raise ValueError(f"deltas lacks tensor {name!r}")
            block = _as_array(deltas[name], xp)
            size = self.unit_map[name].size
            if block.size != n * size:
                raise ValueError(f"deltas[{name!r}] has {block.size // max(n, 1)} entries per step, "
                                 f"expected {size}")
            block = block.reshape(n, size).astype(xp.float32, copy=False)  # as a stored trajectory
            if self._gather[name] is not None:
                block = xp.take(block, self._gather[name], axis=1)
            if not bool(xp.all(xp.isfinite(block))):
                bad = int(np.flatnonzero(~to_numpy(xp.all(xp.isfinite(block), axis=1)))[0])
                raise ValueError(f"deltas[{name!r}] of step {t0 + bad} is not finite")
            current[name] = block
        if n == 0:
            return
        if self.loss_change == "same_batch":
            y = loss_after - loss_before
        else:  # the change from the previous step's loss (none yet at the first step)
            earlier = np.r_[self._before[-1] if self._before else loss_before[0], loss_before[:-1]]
            y = loss_before - earlier
        finite = np.isfinite(y) & np.isfinite(loss_before)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ValueError(f"the loss change of step {t0 + bad} is not finite "
                             f"(loss_before={loss_before[bad]}, loss_after={loss_after[bad]})")

        history = np.r_[self._before, loss_before]  # z_t: this step's loss before, then earlier
        offset = len(self._before)
        first = min(n, max(0, first_row(self.features, self.lags) - t0))  # rows: steps first..n-1
        rows = np.arange(first, n)
        z = np.stack([history[offset + rows - j] for j in range(self.lags)], axis=1) \
            if self.lags else np.zeros((rows.size, 0))
        x = self._unit_features(current, first, n)
        if self.loss_change == "same_batch":
            self._accumulate(x, z, y[first:])
        else:  # a row's loss change is the next step's: the block's last row waits for it
            if self._pending is not None:
                self._accumulate(*self._pending, y[:1])
            self._accumulate(x[:-1], z[:-1], y[first + 1:])
            self._pending = (x[-1:], z[-1:]) if rows.size else None
        self._before = list(history[-max(self.lags, 1):])
        self._previous = {name: block[-1].copy() for name, block in current.items()}
        self.n_steps += n

    def _unit_features(self, current, first, n):
        """The unit features of the block's ``n`` steps from ``first`` on, shape
        (n - first, n_units, m)."""
        xp = self.xp
        out = xp.zeros((n - first, self.n_units, len(self.kinds)))
        if first == n:
            return out
        lagged = needs_previous(self.kinds)
        for name in self.tensor_names:
            block = current[name]
            previous = None
            if lagged:  # Δθ^{t-1}: the block's earlier rows, and the last step of the one before
                before = (self._previous[name][None] if self._previous is not None
                          else xp.zeros_like(block[:1]))
                previous = xp.concatenate([before, block[:-1]], axis=0)[first:]
            unit = self.unit_map[name][self._members[name]]
            add_unit_features(out, block[first:], previous, unit, self.kinds)
        return out

    def _accumulate(self, x, z, y):
        """Merge the rows ``(x, z, y)`` (shapes (R, U, m), (R, k), (R,)) into the moments."""
        n_new = y.size
        if n_new == 0:
            return
        xp = self.xp
        w = np.column_stack([z, y])
        n_old, n_all = self.n_rows, self.n_rows + n_new
        if self.center:  # the block's own co-moments about its means, then Chan et al.'s merge
            mean_x, mean_w = x.mean(axis=0), w.mean(axis=0)
            dx, dw = x - mean_x, w - mean_w
            shift_x, shift_w = mean_x - self._mx, mean_w - self._mw
            weight = n_old * n_new / n_all
            self._mx += shift_x * (n_new / n_all)
            self._mw += shift_w * (n_new / n_all)
            cxx = xp.einsum("rui,ruj->uij", dx, dx) + weight * shift_x[:, :, None] * shift_x[:, None, :]
            cxw = (xp.einsum("rui,rj->uij", dx, xp.asarray(dw))
                   + weight * shift_x[:, :, None] * xp.asarray(shift_w)[None, None, :])
            cww = dw.T @ dw + weight * np.outer(shift_w, shift_w)
        else:
            cxx = xp.einsum("rui,ruj->uij", x, x)
            cxw = xp.einsum("rui,rj->uij", x, xp.asarray(w))
            cww = w.T @ w
        self._cxx += cxx
        self._cxw += cxw
        self._cww += cww
        self._sq += xp.sum(x * x, axis=0)
        steps = np.diff(w if self._last_w is None else np.vstack([self._last_w, w]), axis=0)
        self._dww += steps.T @ steps
        self._last_w = w[-1]
        self.n_rows = n_all

    def f_tests(self):
        """The F-test of every unit on the rows accumulated so far.

        Returns
        -------
        FTestResults
            One test per unit (in unit order), on ``m`` numerator degrees of
            freedom, equal to :func:`granger_prune.stats.granger_f_tests` on
            the stored design; computed where the moments are, returned on
            the host.

        Raises
        ------
        ValueError
            When too few rows were accumulated, or the restricted regressors
            are linearly dependent.
        """
        xp = self.xp
        m, k = len(self.kinds), self.lags
        n_restricted = k + self.center
        if self.n_rows < MIN_ROWS:
            raise ValueError(f"n_rows={self.n_rows} rows were accumulated ({self.n_steps} steps); "
                             f"a Granger test needs at least {MIN_ROWS}")
        check_rows(self.n_rows, n_restricted, m)
        czz, czy, cyy = self._cww[:k, :k], self._cww[:k, k], self._cww[k, k]
        cxz, cxy = self._cxw[:, :, :k], self._cxw[:, :, k]
        with running_on(self.device):
            if k:
                try:
                    chol = np.linalg.cholesky(czz)
                except np.linalg.LinAlgError:
                    raise ValueError("the restricted regressors (lagged losses) are linearly "
                                     "dependent") from None
                beta = np.linalg.solve(czz, czy)
                gram = self._cxx - _whitened_products(cxz, xp.asarray(chol), xp)
                b = cxy - cxz @ xp.asarray(beta)
                ssr_r = float(cyy - czy @ beta)
            else:
                beta = np.zeros(0)
                gram, b, ssr_r = self._cxx, cxy, float(cyy)
            if not ssr_r > SPAN_TOLERANCE * (cyy + self.n_rows * self._mw[k] ** 2):
                raise ValueError("the loss changes lie in the span of the restricted regressors "
                                 "(SSR of the restricted model is 0): there is nothing to test")
            coef = np.append(-beta, 1.0)  # residual e_t = y_t - z'_t β (- intercept)
            dw_num = float(coef @ self._dww @ coef)
            durbin_watson = dw_num / ssr_r if ssr_r > 0 else float("nan")
            explained, rank = quadratic_forms(gram, b, self._sq, xp)
            n_columns = xp.full(self.n_units, m, dtype=xp.int64)
            return f_test_results(explained, rank, n_columns, ssr_r, self.n_rows, n_restricted,
                                  durbin_watson, stacklevel=2)


def _as_array(values, xp):
    """``values`` (NumPy, CuPy or a torch tensor) in namespace ``xp``."""
    if is_torch_tensor(values):
        values = from_torch(values)
    return xp.asarray(values)


def _whitened_products(cxz, chol, xp):
    """``C_xz C_zz⁻¹ C_zx`` per unit from the Cholesky factor of ``C_zz``; shape (U, m, m)."""
    n_units, m, k = cxz.shape
    v = xp.linalg.solve(chol, cxz.reshape(-1, k).T).T.reshape(n_units, m, k)  # L⁻¹ C_zx
    return xp.einsum("uik,ujk->uij", v, v)
