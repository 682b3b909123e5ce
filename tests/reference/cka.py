"""Reference values of linear CKA (Kornblith et al., 2019) and of the minibatch CKA built from
the unbiased HSIC estimator (Nguyen et al., 2021; Song et al., 2012), computed with numpy
from the formulas, independently of src/analysis/cka.rs.

The two matrices are fixed by closed formulas so that Rust and numpy build the same numbers:
  X[i, j] = sin(0.7 i + 1.1 j + 0.3) + 0.05 (i mod 3)      n = 12 rows, 5 columns
  Y[i, j] = cos(0.45 i - 0.8 j) + 0.3 X[i, j mod 5]         n = 12 rows, 4 columns

Run with `python3 tests/reference/cka.py` (numpy only); the tests in src/analysis/cka.rs pin
the printed values.
"""

import numpy as np

n = 12
i = np.arange(n)[:, None].astype(np.float64)
X = np.sin(0.7 * i + 1.1 * np.arange(5)[None, :] + 0.3) + 0.05 * (i % 3)
Y = np.cos(0.45 * i - 0.8 * np.arange(4)[None, :]) + 0.3 * X[:, np.arange(4) % 5]


def linear_cka(x, y):
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    num = np.linalg.norm(y.T @ x, "fro") ** 2
    return num / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro"))


def hsic1(k, l):
    """Unbiased HSIC of two m×m Gram matrices (diagonals are zeroed here)."""
    m = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(m)
    t1 = np.trace(k @ l)
    t2 = (one @ k @ one) * (one @ l @ one) / ((m - 1) * (m - 2))
    t3 = 2.0 / (m - 2) * (one @ k @ l @ one)
    return (t1 + t2 - t3) / (m * (m - 3))


def minibatch_cka(x, y, batches):
    kl = kk = ll = 0.0
    for rows in batches:
        k = x[rows] @ x[rows].T
        l = y[rows] @ y[rows].T
        kl += hsic1(k, l)
        kk += hsic1(k, k)
        ll += hsic1(l, l)
    return kl / np.sqrt(kk * ll)


print(f"linear_cka(X, Y)            = {linear_cka(X, Y):.15f}")
print(f"hsic1(XX', YY') (all rows)  = {hsic1(X @ X.T, Y @ Y.T):.15f}")
print(f"minibatch_cka, rows 0-5|6-11 = {minibatch_cka(X, Y, [range(0, 6), range(6, 12)]):.15f}")
