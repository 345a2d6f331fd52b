"""Weight-shared groups of parameters: ids, layers, per-group scores and masks.

A :class:`ParameterGroups` gives every entry of some tensors an integer group id
(>= 0).  Entries sharing an id are pruned together and share one γ per feature
type in the Granger design (seed 000 §3, "weight-sharing"): a *filter* is one
output channel of a Conv or Linear weight with its bias and the matching
BatchNorm channel, a *layer* is all of them.  :mod:`granger_prune.network.structure`
builds the groups of a PyTorch model; this module works on plain NumPy arrays
and never imports torch.
"""

from collections.abc import Mapping

import numpy as np

#: What one unit of selection is: a parameter, a filter, or a whole layer.
GRANULARITIES = ("weight", "filter", "layer")


class ParameterGroups(Mapping):
    """The group id of every entry of some tensors; a read-only mapping name → ids.

    Parameters
    ----------
    ids : mapping of str to int ndarray
        Per tensor, an integer array of the tensor's shape with the group id
        (>= 0) of each entry.  Ids are shared across tensors: filter ``c`` of a
        layer spans rows of its weight, an entry of its bias and of its norm.
    kernels : sequence of str, optional
        The tensors whose magnitudes score a group in L1-norm pruning (Li et
        al. 2017: the convolution kernels, not biases or norms); all tensors
        by default.

    Attributes
    ----------
    n_groups : int
        One more than the largest id.
    """

    def __init__(self, ids, kernels=None):
        if not ids:
            raise ValueError("ids is empty: groups need at least one tensor")
        self._ids = {}
        for name, gid in ids.items():
            gid = np.asarray(gid)
            if not np.issubdtype(gid.dtype, np.integer) or (gid.size and gid.min() < 0):
                raise ValueError(f"ids[{name!r}] must hold integer group ids >= 0")
            gid = gid.astype(np.int64)  # a private copy, read-only: n_groups stays true
            gid.setflags(write=False)
            self._ids[name] = gid
        if not any(g.size for g in self._ids.values()):
            raise ValueError("every tensor of ids is empty: groups need at least one entry")
        self.kernels = tuple(self._ids) if kernels is None else tuple(kernels)
        unknown = sorted(set(self.kernels) - set(self._ids))
        if unknown:
            raise ValueError(f"kernels {unknown} have no group ids")
        self.n_groups = 1 + max(int(g.max()) for g in self._ids.values() if g.size)

    def __getitem__(self, name):
        return self._ids[name]

    def __iter__(self):
        return iter(self._ids)

    def __len__(self):
        return len(self._ids)

    def __repr__(self):
        return f"ParameterGroups(n_groups={self.n_groups}, tensors={list(self._ids)})"

    def _names(self, names):
        """``names`` (all tensors when None) after checking every one has group ids."""
        if names is None:
            return list(self)
        missing = [n for n in names if n not in self._ids]
        if missing:
            raise ValueError(f"groups does not cover tensor(s) {missing}: every tensor to "
                             f"select on needs group ids; groups cover {list(self._ids)}")
        return list(names)

    def present(self, names=None):
        """Sorted ids of the groups with an entry in ``names`` (all tensors by default)."""
        names = self._names(names)
        return np.unique(np.concatenate([self[n].reshape(-1) for n in names]))

    def layers(self, names=None):
        """The tensors of ``names`` split into layers: tensors that share a group id
        are in one layer (a weight, its bias and norm).  Order follows ``names``.

        Returns
        -------
        list of list of str
        """
        names = self._names(names)
        parent = list(range(len(names)))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner = {}
        for i, name in enumerate(names):
            for gid in np.unique(self[name]):
                j = owner.setdefault(int(gid), i)
                parent[root(i)] = root(j)
        layers = {}
        for i, name in enumerate(names):
            layers.setdefault(root(i), []).append(name)
        return list(layers.values())

    def floored_layers(self, names=None):
        """The layers of ``names`` (as :meth:`layers`) that have more than one group.

        These are the layers a ranking must not empty (the filters of a layer);
        a layer that is a single group (``granularity="layer"``, or a layer with
        one filter) is a unit like any other and is left out.

        Returns
        -------
        list of list of str
        """
        return [layer for layer in self.layers(names) if self.present(layer).size > 1]

    def sums(self, values, names=None):
        """Per group, the sum of ``values`` over its entries in ``names``.

        Parameters
        ----------
        values : mapping of str to ndarray
            Arrays shaped like the tensors.
        names : sequence of str, optional
            Tensors to sum over; all by default.

        Returns
        -------
        ndarray of shape (n_groups,)
        """
        names = self._names(names)
        total = np.zeros(self.n_groups)
        for name in names:
            value = np.asarray(values[name], dtype=np.float64)
            if value.shape != self[name].shape:
                raise ValueError(f"values[{name!r}] has shape {value.shape}, groups have "
                                 f"{self[name].shape}")
            total += np.bincount(self[name].reshape(-1), weights=value.reshape(-1),
                                 minlength=self.n_groups)
        return total

    def alive(self, masks):
        """Per group, whether any of its entries is unpruned; bool (n_groups,)."""
        alive = np.zeros(self.n_groups, dtype=bool)
        for name, gid in self.items():
            mask = np.asarray(masks[name], dtype=bool)
            if mask.shape != gid.shape:
                raise ValueError(f"masks[{name!r}] has shape {mask.shape}, groups have {gid.shape}")
            alive[gid[mask]] = True
        return alive

    def expand(self, keep, alive=None):
        """Masks that keep every entry of the kept groups.

        Parameters
        ----------
        keep : bool ndarray of shape (n_groups,)
        alive : mapping of str to bool ndarray, optional
            Entries already pruned stay pruned.

        Returns
        -------
        dict of str to bool ndarray
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_groups,):
            raise ValueError(f"keep must have shape ({self.n_groups},), got {keep.shape}")
        masks = {name: keep[gid] for name, gid in self.items()}
        if alive is not None:
            masks = {name: m & np.asarray(alive[name], dtype=bool) for name, m in masks.items()}
        return masks


def keep_highest_groups(scores, alive, groups, density, scope="layer"):
    """Keep the alive groups with the highest scores.

    Parameters
    ----------
    scores : ndarray of shape (n_groups,)
        A score per group id; higher means keep.
    alive : mapping of str to bool ndarray
        Entries still unpruned; a group is alive when any of its entries is.
    groups : ParameterGroups
    density : float in (0, 1]
        Fraction of each problem's groups (counting pruned ones) to keep; at
        least one alive group of each layer is kept, so no layer is emptied
        (in a global ranking too, see :func:`top_units_with_layer_floor`).
    scope : {"layer", "global"}
        Rank within each layer (:meth:`ParameterGroups.layers`) or over all groups.

    Returns
    -------
    dict of str to bool ndarray
        The new masks, a subset of ``alive``; ties keep the smaller id.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must lie in (0, 1], got {density!r}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be one of ('layer', 'global'), got {scope!r}")
    if set(alive) != set(groups):
        raise ValueError(f"alive covers tensors {sorted(alive)}, groups cover {sorted(groups)}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (groups.n_groups,):
        raise ValueError(f"scores must have shape ({groups.n_groups},), one per group id, "
                         f"got {scores.shape}")
    is_alive = groups.alive(alive)
    keep = np.zeros(groups.n_groups, dtype=bool)
    for names in (groups.layers() if scope == "layer" else [list(groups)]):
        units = groups.present(names)
        candidates = units[is_alive[units]]
        n_keep = max(1, int(round(units.size * density)))
        layer_units = [candidates[np.isin(candidates, groups.present(layer))]
                       for layer in groups.floored_layers(names)]
        keep[top_units_with_layer_floor(scores, candidates, n_keep, layer_units)] = True
    return groups.expand(keep, alive)


def top_units_with_layer_floor(scores, candidates, n_keep, layer_units):
    """:func:`top_units`, with at least the best candidate of every layer kept.

    In a global ranking the layers compete for one budget, so a layer whose
    units all score low would be emptied and the network disconnected.  The
    best candidate of each layer in ``layer_units`` is kept first, then the
    remaining budget goes to the best of the rest; the floor wins when the
    budget is smaller than the number of layers.

    Parameters
    ----------
    scores, candidates, n_keep
        As for :func:`top_units`.
    layer_units : list of int ndarray
        The candidates of each floored layer (see
        :meth:`ParameterGroups.floored_layers`: a layer that is one unit is not
        floored).

    Returns
    -------
    int ndarray
    """
    floor = [top_units(scores, units, 1) for units in layer_units if units.size]
    floor = np.concatenate(floor) if floor else np.empty(0, dtype=np.int64)
    rest = candidates[~np.isin(candidates, floor)]
    return np.concatenate([floor, top_units(scores, rest, n_keep - floor.size)]).astype(np.int64)


def top_units(scores, candidates, n_keep):
    """The ``n_keep`` of ``candidates`` with the highest ``scores`` (all when fewer).

    Parameters
    ----------
    scores : ndarray
        Score of every unit index.
    candidates : int ndarray
        Unit indices that may be kept.
    n_keep : int

    Returns
    -------
    int ndarray
        The kept unit indices; among equal scores the earlier candidate wins.
    """
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order[:max(0, n_keep)]]
