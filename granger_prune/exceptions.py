"""Warnings and errors raised by granger_prune."""

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning


class GrangerPruneWarning(UserWarning):
    """Base class of every warning granger_prune emits."""


class ConvergenceWarning(GrangerPruneWarning, _SklearnConvergenceWarning):
    """A solver stopped at ``max_iter`` before reaching its tolerance.

    Also a :class:`sklearn.exceptions.ConvergenceWarning`, so the filters users
    set for scikit-learn's solvers apply to this package's too.
    """


class SupportLimitWarning(GrangerPruneWarning):
    """A lasso with ``n_samples`` rows kept (nearly) ``n_samples`` features.

    A lasso solution has at most ``n_samples`` non-zero coefficients, so with
    ``d >> T`` the zero rule cannot keep more than ``T`` parameters of a fitted
    problem, and the rank rule must order the remaining ones by a tie-breaker.
    """


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (before the step, or after it while a
    trajectory was recorded); the message names the step."""


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or inf before the optimizer step; the message names the tensor
    and the step."""


class CheckpointError(ValueError):
    """A checkpoint or run folder that cannot be trusted: damaged, edited, another run's or
    another code's; the message names the file and what does not match."""


class DegenerateLayerWarning(GrangerPruneWarning):
    """A recorded tensor never changed over a trajectory: its tests are degenerate (F = NaN,
    p = 1) and its lasso coefficients zero, so no data speaks for any of its parameters."""
