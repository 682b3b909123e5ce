"""Reference values for `method::kf_loss` tests: KF's InfoMax and InfoMin terms and the
label-smoothed cross-entropy, written from METHODS.md ("KF") in float64 PyTorch, with the
gradients of each term with respect to its first input.
Run: python3 tests/reference/kf_losses.py
"""
import math

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def info_max(a, b):
    # Rows normalised, S = â b̂ᵀ, E_j = trace(S)/B², E_m = mean(exp(S ⊙ (1 − I))), IM = −(E_j − log E_m).
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    s = a @ b.T
    n = s.shape[0]
    e_j = torch.trace(s) / n**2
    e_m = torch.exp(s * (1 - torch.eye(n))).mean()
    return -(e_j - torch.log(e_m))


def info_min(z):
    # KL of the batch statistics to N(0, I): −½ · mean(1 + log σ² − μ² − σ²).
    mu, var = z.mean(0), z.var(0, unbiased=False)
    return -0.5 * torch.mean(1 + torch.log(var) - mu**2 - var)


def vals(n, off, scale):
    return torch.tensor([scale * math.sin(0.7 * i + off) for i in range(n)])


def show(name, t):
    print(f"{name}: [{', '.join(f'{v:.12f}' for v in t.flatten().tolist())}]")


a = vals(12, 0.3, 1.5).reshape(4, 3).requires_grad_()
b = vals(12, 1.1, 0.8).reshape(4, 3)
im = info_max(a, b)
im.backward()
show("info_max", im)
show("info_max grad", a.grad)

z = vals(15, 0.5, 2.0).reshape(5, 3).requires_grad_()
imin = info_min(z)
imin.backward()
show("info_min", imin)
show("info_min grad", z.grad)

logits = vals(12, 2.0, 3.0).reshape(3, 4).requires_grad_()
labels = torch.tensor([1, 3, 0])
ls = F.cross_entropy(logits, labels, label_smoothing=0.1)
ls.backward()
show("ls_ce", ls)
show("ls_ce grad", logits.grad)
