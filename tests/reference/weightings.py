"""Reference values for `method::balance` tests: Aligned-MTL and MoCo-MTL on fixed small
per-task gradient matrices, written from LibMTL's `weighting/Aligned_MTL.py` and
`weighting/MoCo.py` in float64 PyTorch (symmetric eigen-decomposition: torch.linalg.eigh).
Run: python3 tests/reference/weightings.py
"""
import torch

torch.set_default_dtype(torch.float64)


def aligned(G):
    T = G.shape[0]
    M = G @ G.T
    lmbda, V = torch.linalg.eigh(M)
    tol = lmbda.max() * T * torch.finfo(torch.float32).eps
    rank = int((lmbda > tol).sum())
    order = torch.argsort(lmbda, descending=True)
    lmbda, V = lmbda[order][:rank], V[:, order][:, :rank]
    B = lmbda[-1].sqrt() * (V @ torch.diag(1 / lmbda.sqrt()) @ V.T)
    alpha = B.sum(0)
    return alpha, alpha @ G, B @ G


def simplex(v):
    # Euclidean projection onto the probability simplex (Duchi et al. 2008).
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0)
    k = torch.arange(1, len(v) + 1)
    cond = u - (css - 1) / k > 0
    rho = int(k[cond][-1])
    theta = (css[rho - 1] - 1) / rho
    return torch.clamp(v - theta, min=0)


def moco(Gs, Ls, update, beta=0.5, beta_sigma=0.5, gamma=0.1, gamma_sigma=0.5, rho=0.0):
    T, D = Gs[0].shape
    y = torch.zeros(T, D)
    lam = torch.full((T,), 1.0 / T)
    out = []
    for k, (G, L) in enumerate(zip(Gs, Ls), start=1):
        Gh = torch.stack([G[t] / (G[t].norm() + 1e-8) * L[t] for t in range(T)])
        y = y - (beta / k ** beta_sigma) * (y - Gh)
        step = lam - (gamma / k ** gamma_sigma) * ((y @ y.T + rho * torch.eye(T)) @ lam)
        lam = torch.softmax(step, -1) if update == "softmax" else simplex(step)
        out.append((lam.clone(), y.T @ lam))
    return out


def show(name, t):
    print(f"{name}: [{', '.join(f'{v:.12f}' for v in t.flatten().tolist())}]")


G_full = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 1.0, -1.0], [2.0, 0.0, 1.0, 1.0]])
G_rank2 = torch.tensor([[1.0, 0.0, 1.0, 0.0], [2.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
for name, G in [("full", G_full), ("rank2", G_rank2)]:
    a, g, aligned_G = aligned(G)
    show(f"aligned {name} alpha", a)
    show(f"aligned {name} grad", g)
    show(f"aligned {name} singular values", torch.linalg.svdvals(aligned_G))

Gs = [G_full, G_full * 0.5 + G_rank2, G_rank2 - G_full]
Ls = [torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.8, 1.5, 0.7]), torch.tensor([0.6, 1.2, 0.9])]
for update in ["softmax", "simplex"]:
    for k, (lam, g) in enumerate(moco(Gs, Ls, update), start=1):
        show(f"moco {update} step {k} lambda", lam)
        show(f"moco {update} step {k} grad", g)
