"""Reference pooled features of a tiny ViT (timm layout, as BioMedCLIP's image tower) for
`model::vit` tests. Plain PyTorch ops in float64, written from the ViT paper's definition
(pre-norm blocks, class token, learned position embeddings, LayerNorm eps 1e-6, exact GELU).

Every parameter is filled by a formula of its name and flat index (the Rust test uses the
same one), the input image by sin(0.1·i). Run: python3 tests/reference/vit_forward.py
"""
import math

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

B, IMG, PATCH, DIM, HEADS, DEPTH = 2, 8, 4, 8, 2, 2
N = (IMG // PATCH) ** 2 + 1


def fill(name, shape):
    n = math.prod(shape)
    off = sum(name.encode())
    return torch.tensor([0.05 * (((i * 7 + off) % 17) - 8) for i in range(n)]).reshape(shape)


def ln(x, name):
    return F.layer_norm(x, (DIM,), fill(name + ".weight", (DIM,)) + 1.0, fill(name + ".bias", (DIM,)), eps=1e-6)


def lin(x, name, out, inp):
    return x @ fill(name + ".weight", (out, inp)).T + fill(name + ".bias", (out,))


img = torch.tensor([math.sin(0.1 * i) for i in range(B * 3 * IMG * IMG)]).reshape(B, 3, IMG, IMG)
x = F.conv2d(img, fill("patch_embed.proj.weight", (DIM, 3, PATCH, PATCH)),
             fill("patch_embed.proj.bias", (DIM,)), stride=PATCH)
x = x.flatten(2).transpose(1, 2)
x = torch.cat([fill("cls_token", (1, 1, DIM)).expand(B, -1, -1), x], 1) + fill("pos_embed", (1, N, DIM))
dh = DIM // HEADS
for i in range(DEPTH):
    p = f"blocks.{i}"
    h = ln(x, p + ".norm1")
    qkv = lin(h, p + ".attn.qkv", 3 * DIM, DIM).reshape(B, N, 3, HEADS, dh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), -1)
    y = (att @ v).transpose(1, 2).reshape(B, N, DIM)
    x = x + lin(y, p + ".attn.proj", DIM, DIM)
    h = ln(x, p + ".norm2")
    x = x + lin(F.gelu(lin(h, p + ".mlp.fc1", 4 * DIM, DIM)), p + ".mlp.fc2", DIM, 4 * DIM)
out = ln(x[:, 0], "norm")
print(", ".join(f"{v:.10f}" for v in out.flatten().tolist()))
