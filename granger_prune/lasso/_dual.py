"""The dual point and duality gap of the elastic net (see :mod:`.objective` for the formulas).

Shared by the public evaluation functions, the outer solver and the
working-set solver.
"""


def dual_norm(g, positive, xp):
    """``||g||_inf``, or ``max(max(g), 0)`` under the constraint ``w >= 0``."""
    if g.shape[0] == 0:
        return 0.0
    if positive:
        return max(float(xp.max(g)), 0.0)
    return float(xp.max(xp.abs(g)))


def dual_scaling(g_norm, l1):
    """``s = min(1, l1 / g_norm)``: the factor making ``s r`` dual feasible."""
    return l1 / g_norm if g_norm > l1 else 1.0


def gap_from_residual(r_norm2, r_dot_y, s, l1_norm, w_norm2, l1, l2, n_samples):
    """The elastic-net duality gap ``G(w)`` (module docstring) from scalars.

    ``r_norm2 = ||r||^2``, ``r_dot_y = r^T yc``, ``s`` the dual scaling,
    ``l1_norm = ||w||_1``, ``w_norm2 = ||w||^2``.
    """
    return ((0.5 * (1.0 + s * s) * r_norm2 - s * r_dot_y) / n_samples
            + l1 * l1_norm + 0.5 * l2 * (1.0 + s * s) * w_norm2)
