#!/usr/bin/env python3
"""Reference values for src/method/kd_loss.rs, computed with PyTorch.

Run: python3 tests/reference/kd_losses.py
The inputs are small deterministic matrices (no random numbers), so the printed values
can be pasted into the Rust tests as they are.
"""
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=10)


def soft_kl(student, teacher, t):
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), summed over the last axis,
    averaged over rows (PyTorch's KLDivLoss with reduction='batchmean')."""
    return F.kl_div(
        F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1), reduction="batchmean"
    ) * t * t


s = torch.tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [-2.0, 1.0, 0.0, 0.5]], dtype=torch.float64, requires_grad=True)
te = torch.tensor([[1.0, 0.0, 1.0, -1.0], [0.5, 2.5, -1.0, 1.0], [0.0, 0.0, 3.0, -0.5]], dtype=torch.float64)

for t in (1.0, 4.0, 10.0):
    s.grad = None
    v = soft_kl(s, te, t)
    v.backward()
    print(f"T={t}: kd = {v.item():.12e}")
    print("  d/ds =", [f"{g:.12e}" for g in s.grad.flatten().tolist()])

labels = torch.tensor([2, 3, 1])
alpha, t = 0.9, 4.0
s.grad = None
v = alpha * soft_kl(s, te, t) + (1 - alpha) * F.cross_entropy(s, labels)
v.backward()
print(f"hinton alpha={alpha} T={t}: loss = {v.item():.12e}")
print("  d/ds =", [f"{g:.12e}" for g in s.grad.flatten().tolist()])
