"""Streaming statistics of a table read in chunks: means and co-moments merged pairwise,
grid steps, a bounded set of rows chosen by hash, and the row hash itself (no TensorFlow).

Means and co-moments (Chan, Golub and LeVeque's pairwise update): a chunk of n_b rows has
its own mean m_b and centred co-moment M_b = sum (x - m_b)(x - m_b)^T; merged with the
running (n_a, m_a, M_a), with d = m_b - m_a and n = n_a + n_b,

    m = m_a + d n_b / n,        M = M_a + M_b + d d^T n_a n_b / n.

Every sum is of centred values, so a column at 1e6 + small noise keeps its variance (the
naive sum of squares minus n m^2 loses it to cancellation).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfp_realnvp.prepare import CORRELATION_RIDGE, grid_step

MAX_DISTINCT = 1 << 16  # distinct values a column may show before it counts as continuous
_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


@dataclasses.dataclass
class Moments:
    """Count, column means `[W]` and centred co-moment `[W, W]` of the rows seen so far."""

    count: int
    mean: np.ndarray
    comoment: np.ndarray

    @classmethod
    def empty(cls, width: int) -> Moments:
        return cls(0, np.zeros(width), np.zeros((width, width)))

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        """The moments of one chunk `[n, W]`."""
        rows = np.asarray(rows, dtype=np.float64)
        if not len(rows):
            return cls.empty(rows.shape[1])
        mean = rows.mean(axis=0)
        centred = rows - mean
        return cls(len(rows), mean, centred.T @ centred)

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows (module docstring)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        return Moments(count, self.mean + delta * (other.count / count),
                       self.comoment + other.comoment
                       + np.outer(delta, delta) * (self.count * other.count / count))

    def add(self, rows: np.ndarray) -> Moments:
        return self.merge(Moments.of(rows))

    def covariance(self) -> np.ndarray:
        """The population covariance M / n (as `np.cov(..., bias=True)`)."""
        return self.comoment / max(self.count, 1)

    def to_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean.tolist(),
                "comoment": self.comoment.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> Moments:
        return cls(int(values["count"]), np.asarray(values["mean"], np.float64),
                   np.asarray(values["comoment"], np.float64))


def affine_stats_of(moments: Moments, whiten: bool = True) -> dict[str, list | None]:
    """`prepare.affine_stats` from moments: means, standard deviations (a constant column
    gets 1) and the Cholesky factor of the correlations plus the 1e-6 ridge (None unless
    `whiten`); equal to it on the same rows up to rounding."""
    mean = moments.mean
    covariance = moments.covariance()
    std = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    stats: dict[str, list | None] = {"data_shift": mean.tolist(), "data_scale": std.tolist(),
                                     "data_tril": None}
    if whiten:
        correlation = covariance / np.outer(std, std) + CORRELATION_RIDGE * np.eye(len(mean))
        stats["data_tril"] = np.linalg.cholesky(correlation).tolist()
    return stats


class GridSteps:
    """Per column: its distinct values while at most `MAX_DISTINCT`, then only the
    smallest gap between neighbours seen within a chunk (an upper bound of the true gap)."""

    def __init__(self, width: int) -> None:
        self.values: list[np.ndarray | None] = [np.empty(0) for _ in range(width)]
        self.chunk_gap = np.full(width, np.inf)

    def add(self, rows: np.ndarray) -> None:
        for j in range(rows.shape[1]):
            distinct = np.unique(rows[:, j])
            if len(distinct) > 1:
                self.chunk_gap[j] = min(self.chunk_gap[j], np.diff(distinct).min())
            if self.values[j] is not None:
                merged = np.union1d(self.values[j], distinct)
                self.values[j] = merged if len(merged) <= MAX_DISTINCT else None

    def steps(self, mode: str, num_rows: int) -> list[float] | None:
        """`prepare.grid_steps`'s widths over the rows seen: exact while a column has at most
        `MAX_DISTINCT` distinct values; a column with more is continuous ("auto": 0;
        "uniform": its smallest gap within a chunk)."""
        if mode == "none":
            return None
        steps = []
        for j, values in enumerate(self.values):
            if values is None:
                steps.append(float(self.chunk_gap[j]) if mode == "uniform" else 0.0)
                continue
            steps.append(grid_step(values, num_rows, mode))
        return steps


def row_uniforms(start: int, count: int, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) for each global row index start..start+count-1: the
    SplitMix64 hash of (index + seed * golden ratio), its top 53 bits. A function of the
    index and seed alone, so the same row gets the same number however it is read."""
    offset = np.uint64((seed * _GOLDEN + _GOLDEN) & _MASK)
    z = np.arange(start, start + count, dtype=np.uint64) + offset
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class SmallestKeys:
    """The (at most) `limit` rows with the smallest keys among those offered, in memory at
    most 2 * limit of them; `rows()` gives them in global row order."""

    def __init__(self, limit: int, width: int) -> None:
        self.limit = limit
        self.keys = np.empty(0)
        self.index = np.empty(0, np.int64)
        self.data = np.empty((0, width), np.float32)

    def offer(self, keys: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
        self.keys = np.concatenate([self.keys, keys])
        self.index = np.concatenate([self.index, index])
        self.data = np.concatenate([self.data, rows.astype(np.float32)])
        if len(self.keys) > 2 * self.limit:
            self._trim()

    def _trim(self) -> None:
        if len(self.keys) > self.limit:
            keep = np.argpartition(self.keys, self.limit - 1)[:self.limit]
            self.keys, self.index, self.data = self.keys[keep], self.index[keep], self.data[keep]

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(global row indices, rows) kept, in row order."""
        self._trim()
        order = np.argsort(self.index, kind="stable")
        return self.index[order], self.data[order]

    def threshold(self, default: float) -> float:
        """The largest key kept when full (a row is in iff its key is <= it), else `default`."""
        self._trim()
        return float(self.keys.max()) if len(self.keys) >= self.limit else default
