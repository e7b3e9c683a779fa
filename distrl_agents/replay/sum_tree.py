"""A binary sum tree with batched, vectorised updates and sampling.

Used by proportional prioritized replay (Schaul et al. 2016, "Prioritized Experience Replay",
Sec. 3.3 and Appendix B.2.1): leaf ``i`` holds ``p_i^alpha`` and an inner node the sum of its
children, so drawing ``i`` with probability ``p_i^alpha / sum_k p_k^alpha`` is one root-to-leaf
descent. Every operation here handles a whole batch at once with numpy; the only Python loop is over
the tree depth (``log2(capacity)`` iterations), never over samples.
"""

from __future__ import annotations

import numpy as np

_SCALAR_PATH_MAX = 8  # below this many leaves per update, walk the paths with Python ints


class SumTree:
    """Sum tree over ``capacity`` leaves stored as a 1-based heap in one float64 array.

    Layout: ``P`` is the smallest power of two ``>= capacity``; ``tree`` has ``2 * P`` entries, node
    ``k`` has children ``2k`` and ``2k + 1``, leaf ``i`` lives at ``P + i`` and ``tree[1]`` is the
    total. Padding leaves (``i >= capacity``) stay zero and are never sampled.

    Parents are always *recomputed* as the sum of their two children (never updated by adding a
    delta), so the tree equals a fresh bottom-up build of its leaves: no floating-point drift
    accumulates over millions of updates, and saving/restoring the array is exact.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        size = 1
        while size < capacity:
            size *= 2
        self.capacity = capacity
        self._size = size  # P
        self._depth = size.bit_length() - 1  # number of levels below the root
        self.tree = np.zeros(2 * size, dtype=np.float64)  # [2P]

    @property
    def total(self) -> float:
        """Sum of all leaves."""
        return float(self.tree[1])

    @property
    def nbytes(self) -> int:
        return int(self.tree.nbytes)

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Leaf values at ``indices`` ``[B]`` -> ``[B]`` float64."""
        return self.tree[np.asarray(indices, dtype=np.int64) + self._size]

    def set(self, indices: np.ndarray, values: np.ndarray | float) -> None:
        """Set leaves ``indices`` ``[B]`` to ``values`` (``[B]`` or scalar), then fix the ancestors.

        Duplicate indices are allowed (the last value wins for the leaf; ancestors are recomputed
        from children, so duplicates just assign the same sum twice).
        """
        nodes = np.asarray(indices, dtype=np.int64) + self._size  # [B]
        if nodes.size == 0:
            return
        tree = self.tree
        tree[nodes] = values
        if nodes.size <= _SCALAR_PATH_MAX:
            # A handful of leaves (the per-step insert/evict of add()): walking each path with
            # Python ints is ~10x faster than a numpy op per level on tiny arrays.
            for node in nodes.tolist():
                for _ in range(self._depth):
                    node >>= 1
                    tree[node] = tree[2 * node] + tree[2 * node + 1]
            return
        for _ in range(self._depth):
            nodes = nodes >> 1
            left = nodes << 1
            tree[nodes] = tree[left] + tree[left + 1]

    def find(self, targets: np.ndarray) -> np.ndarray:
        """For each prefix-sum target ``u`` ``[B]`` in ``[0, total)`` return the leaf ``i`` with
        ``sum_{k<i} leaf_k <= u < sum_{k<=i} leaf_k``, as ``[B]`` int64.

        The descent only turns right into a subtree with positive mass, so even when rounding puts
        ``u`` at or above a node's sum the result is a leaf with a positive value (never a padding
        leaf or a zero-priority slot), as long as ``total > 0``.
        """
        u = np.array(targets, dtype=np.float64)  # [B], copied: modified in place below
        nodes = np.ones(u.shape[0], dtype=np.int64)  # [B], start at the root
        tree = self.tree
        for _ in range(self._depth):
            left = nodes << 1
            left_sum = tree[left]
            go_right = (u >= left_sum) & (tree[left + 1] > 0.0)
            u -= np.where(go_right, left_sum, 0.0)
            nodes = left + go_right
        return nodes - self._size

    def clear(self) -> None:
        self.tree.fill(0.0)
