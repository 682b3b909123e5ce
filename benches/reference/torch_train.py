#!/usr/bin/env python3
"""PyTorch side of `harness bench train`.

Reads one JSON request from the file named by its argument, or from stdin without one
(written by src/bench/reference.rs: thread count, timing
rules, one workload or none, and a list of single operations to time), builds the same network the harness builds
(ResNet with BasicBlocks or ShuffleNetV2, torchvision layouts, CIFAR stem for 28-32 px), runs the same
training step (forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-4
on weights only) on a fixed random batch, and prints one JSON answer on stdout. A LoRKD
workload (ShuffleNetV2 with per-task low-rank experts on every groups = 1 convolution, a
batch mixing the tasks) is measured in two forms: the LoRKD code's (per-sample weights, one
grouped convolution with groups = batch) as "step" and one convolution per task as
"step_task_grouped".

Peak step memory is the high-water mark of CPU tensor allocations during one step, summed in
time order from the profiler's memory events; the harness counts its heap the same way
(allocations minus frees above what lives between steps).

Usage (normally started by the harness):  harness bench train
Manual:  python3 benches/reference/torch_train.py request.json
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class ResNet(nn.Module):
    def __init__(self, widths, depths, stem, classes):
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, w0, 7, 2, 3, bias=False)
            self.pool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, w0, 3, 1, 1, bias=False)
            self.pool = None
        self.bn1 = nn.BatchNorm2d(w0)
        blocks, cin = [], w0
        for stage, (w, d) in enumerate(zip(widths, depths)):
            for i in range(d):
                blocks.append(BasicBlock(cin, w, 2 if stage > 0 and i == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        if self.pool is not None:
            y = self.pool(y)
        y = self.blocks(y)
        return self.head(y.mean((2, 3)))


class Routing:
    """The task of every sample of the batch, shared by a LoRKD network's EKS convolutions."""

    tasks = None


class EksConv(nn.Module):
    """LoRKD's EKS convolution (groups = 1): W0 plus per-task factors A_t (r*k, cin*k),
    B_t (cout*k, r*k), delta W_t = (alpha / r) * reshape(B_t @ A_t) to (cout, cin, k, k).
    form "reference": the LoRKD code's form, every sample its own weight
    W0 + sum_t M[b, t] delta W_t and one grouped convolution with groups = batch;
    form "task-grouped": one convolution per present task with W0 + delta W_t."""

    def __init__(self, cin, cout, k, stride, padding, lorkd, form, routing):
        super().__init__()
        self.base = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        tasks, rank = lorkd["tasks"], lorkd["rank"]
        bound = 1.0 / (cin * k) ** 0.5
        self.A = nn.Parameter(torch.empty(tasks, rank * k, cin * k).uniform_(-bound, bound))
        self.B = nn.Parameter(torch.zeros(tasks, cout * k, rank * k))
        self.scale = lorkd["alpha"] / rank
        self.form, self.routing = form, routing

    def forward(self, x):
        w0 = self.base.weight
        tasks = self.routing.tasks
        deltas = (torch.bmm(self.B, self.A) * self.scale).reshape(-1, *w0.shape)
        stride, padding = self.base.stride, self.base.padding
        if self.form == "reference":
            b, c, h, w = x.shape
            onehot = F.one_hot(tasks, deltas.shape[0]).to(x.dtype)
            weights = w0 + torch.einsum("bt,tocij->bocij", onehot, deltas)
            y = F.conv2d(x.reshape(1, b * c, h, w), weights.reshape(-1, *w0.shape[1:]),
                         stride=stride, padding=padding, groups=b)
            return y.reshape(b, w0.shape[0], *y.shape[2:])
        parts, order = [], []
        for t in torch.unique(tasks).tolist():
            rows = (tasks == t).nonzero().flatten()
            parts.append(F.conv2d(x[rows], w0 + deltas[t], stride=stride, padding=padding))
            order.append(rows)
        inverse = torch.empty_like(tasks)
        inverse[torch.cat(order)] = torch.arange(tasks.numel())
        return torch.cat(parts)[inverse]


# Set by build(): (lorkd settings, form, routing) while a LoRKD network is built.
EXPERTS = None


def conv_bn(cin, cout, k, stride, groups=1):
    if EXPERTS is not None and groups == 1:
        conv = EksConv(cin, cout, k, stride, k // 2, *EXPERTS)
    else:
        conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit (torchvision layout): split or duplicate, branches, interleave."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                *conv_bn(cin, cin, 3, stride, groups=cin), *conv_bn(cin, half, 1, 1), nn.ReLU()
            )
        self.branch2 = nn.Sequential(
            *conv_bn(cin if stride > 1 else half, half, 1, 1),
            nn.ReLU(),
            *conv_bn(half, half, 3, stride, groups=half),
            *conv_bn(half, half, 1, 1),
            nn.ReLU(),
        )

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            y = torch.cat((a, self.branch2(b)), dim=1)
        else:
            y = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleNetV2(nn.Module):
    """widths = [stem, one per stage, final], as the harness's ShuffleNetV2."""

    def __init__(self, widths, depths, stem, classes):
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn(3, widths[0], 3, 2 if stem == "imagenet" else 1), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else None
        units, cin = [], widths[0]
        for width, depth in zip(widths[1:-1], depths):
            for i in range(depth):
                units.append(InvertedResidual(cin, width, 2 if i == 0 else 1))
                cin = width
        self.units = nn.Sequential(*units)
        self.conv5 = nn.Sequential(*conv_bn(cin, widths[-1], 1, 1), nn.ReLU())
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x):
        y = self.conv1(x)
        if self.pool is not None:
            y = self.pool(y)
        return self.head(self.conv5(self.units(y)).mean((2, 3)))


def build(workload, form=None, routing=None):
    """The workload's network; a LoRKD workload's with EKS convolutions in `form`."""
    global EXPERTS
    args = (workload["widths"], workload["depths"], workload["stem"], workload["classes"])
    lorkd = workload.get("lorkd")
    if lorkd is not None and workload["arch"] != "shufflenetv2":
        raise SystemExit("torch_train.py: LoRKD experts are built for shufflenetv2 only")
    EXPERTS = (lorkd, form, routing) if lorkd is not None else None
    try:
        if workload["arch"] == "resnet":
            return ResNet(*args)
        if workload["arch"] == "shufflenetv2":
            return ShuffleNetV2(*args)
    finally:
        EXPERTS = None
    raise SystemExit(f"torch_train.py: unknown arch {workload['arch']!r}")


def peak_bytes(fn):
    """Heap high-water mark of CPU tensor allocations while fn() runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def train_step(req, form=None):
    w = req["workload"]
    torch.manual_seed(0)
    routing = Routing()
    model = build(w, form, routing).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=req["lr"],
        momentum=0.9,
    )
    b, s = w["batch_size"], w["image_size"]
    if w.get("lorkd") is not None:
        routing.tasks = torch.randint(0, w["lorkd"]["tasks"], (b,))
    x = torch.rand(b, 3, s, s) * 2 - 1
    y = torch.randint(0, w["classes"], (b,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(req["warmup"]):
        step()
    peak = peak_bytes(step)
    resident = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    resident += sum(
        t.numel() * t.element_size()
        for st in opt.state.values()
        for t in st.values()
        if torch.is_tensor(t)
    )
    resident += x.numel() * x.element_size() + y.numel() * y.element_size()
    times = []
    started = time.perf_counter()
    while len(times) < req["min_steps"] or time.perf_counter() - started < req["min_secs"]:
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    if not torch.isfinite(loss):
        raise SystemExit(f"torch_train.py: loss became {loss.item()}")
    med = median(times)
    return {
        "images_per_s": b / med,
        "step_s_median": med,
        "step_s_mean": sum(times) / len(times),
        "steps": len(times),
        "peak_step_bytes": peak,
        "resident_bytes": resident,
    }


def timed(min_secs, fn):
    fn()
    fn()
    times = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < min_secs:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def op_times(req, op):
    b, c, s = op["batch"], op["cin"], op["size"]
    if op["kind"] == "conv":
        layer = nn.Conv2d(c, op["cout"], op["k"], op["stride"], op["padding"], bias=False)
    elif op["kind"] == "dwconv":
        layer = nn.Conv2d(c, c, op["k"], op["stride"], op["padding"], groups=c, bias=False)
    elif op["kind"] == "bn":
        layer = nn.BatchNorm2d(c).train()
    else:
        raise SystemExit(f"torch_train.py: unknown op kind {op['kind']!r}")
    x = torch.randn(b, c, s, s, requires_grad=op["input_grad"])
    probe = torch.randn_like(layer(x))

    def forward():
        layer(x)

    def forward_backward():
        x.grad = None
        for p in layer.parameters():
            p.grad = None
        (layer(x) * probe).sum().backward()

    return {
        "forward_s": timed(req["op_min_secs"], forward),
        "forward_backward_s": timed(req["op_min_secs"], forward_backward),
    }


def main():
    if len(sys.argv) > 1:
        with open(sys.argv[1]) as f:
            req = json.load(f)
    else:
        req = json.load(sys.stdin)
    torch.set_num_threads(req["threads"])
    torch.set_num_interop_threads(1)
    answer = {
        "torch_version": torch.__version__,
        # What ATEN_CPU_CAPABILITY (set by the harness to its own cap) left PyTorch using.
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "step": None,
        "ops": {op["key"]: op_times(req, op) for op in req["ops"]},
    }
    w = req["workload"]
    if w is not None and w.get("lorkd") is not None:
        answer["step"] = train_step(req, "reference")
        answer["step_task_grouped"] = train_step(req, "task-grouped")
    elif w is not None:
        answer["step"] = train_step(req)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
