"""Benchmark of trajectory recording against plain training (see README.md).

    python studies/bench_recording/run.py                 # the digits MLPs on the CPU (about 3 min)
    python studies/bench_recording/run.py --quick         # a smoke run (about 30 s)
    python studies/bench_recording/run.py --device cuda   # ResNet-18, CIFAR-shaped batches, on a GPU

For every model, four kinds of training step on one fixed minibatch:

* ``plain``: ``optimizer_step`` (the step, its loss checked on the host);
* ``plain+forward``: the same and one forward pass on the same minibatch without
  autograd, its loss read: what any same-minibatch ``ΔL`` costs;
* ``recorded-memory``: ``TrajectoryRecorder.step`` into the memory store;
* ``recorded-disk``: the same into a :class:`~granger_prune.record.DiskTrajectory`.

Each kind runs in a fresh child process (its own peak memory, no allocator state
carried over), ``--rounds`` times interleaved with the others; a child times
``--steps`` steps after ``--warmup`` untimed ones and reports the median step.
The overhead of recording is the median recorded step over the median
``plain+forward`` step, minus one.  Peak host memory is the child's peak
resident set (``VmHWM``) beyond what it held before the timed steps, and the
peak device memory ``torch.cuda.max_memory_allocated``.  The disk store's
``write_gbs`` is the bandwidth its writes needed (bytes recorded per second of
recording).  Writes JSON next to this file.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KINDS = ("plain", "plain+forward", "recorded-memory", "recorded-disk")
#: name: (builder, batch size, input shape, classes, device kinds it runs on)
MODELS = {
    "mlp-64-128-64-10": ("mlp", (128, 64), 16, (64,), 10),
    "mlp-64-512-512-10": ("mlp", (512, 512), 32, (64,), 10),
    "resnet18-cifar": ("resnet18", None, 128, (3, 32, 32), 10),
}


def peak_rss_bytes():
    """The process's peak resident set (``VmHWM``), in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return float("nan")


def build(name, device):
    import torch
    from torch import nn

    from granger_prune.zoo.models import MLP

    kind, hidden, batch, shape, n_classes = MODELS[name]
    torch.manual_seed(0)
    if kind == "mlp":
        model = MLP(shape[0], hidden, n_classes)
    else:
        import torchvision

        model = torchvision.models.resnet18(num_classes=n_classes)
    model = model.to(device)
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *shape, generator=g).to(device)
    y = torch.randint(0, n_classes, (batch,), generator=g).to(device)
    return model, params, x, y, nn.functional.cross_entropy


def child(name, kind, device, n_steps, warmup, threads):
    """Time one kind of step in this process; print a JSON line."""
    import torch

    from granger_prune.record import DiskTrajectory, TrajectoryRecorder, optimizer_step

    torch.set_num_threads(threads)
    model, params, x, y, loss_fn = build(name, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    folder = tempfile.mkdtemp(prefix="bench_recording_", dir=os.environ.get("BENCH_DISK_DIR"))
    recorder = None
    if kind == "recorded-memory":
        recorder = TrajectoryRecorder(model, params)
    elif kind == "recorded-disk":
        recorder = TrajectoryRecorder(model, params, trajectory=DiskTrajectory(
            Path(folder) / "run", shapes, expected_steps=n_steps + warmup))
    cuda = device.startswith("cuda")

    def one_step():
        if recorder is not None:
            recorder.step(optimizer, loss_fn, x, y)
            return
        optimizer_step(model, optimizer, loss_fn, x, y)
        if kind == "plain+forward":
            with torch.no_grad():
                float(loss_fn(model(x), y))

    for _ in range(warmup):
        one_step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = peak_rss_bytes()
    times = []
    start = time.perf_counter()
    for _ in range(n_steps):
        t0 = time.perf_counter()
        one_step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if recorder is not None:
        recorder.flush()  # the writes belong to the recording
    total = time.perf_counter() - start
    row_bytes = 4 * sum(p.numel() for p in params.values())
    out = dict(model=name, kind=kind, device=device, n_params_recorded=int(row_bytes // 4),
               median_step_ms=1e3 * float(np.median(times)), mean_step_ms=1e3 * total / n_steps,
               peak_rss_gb=(peak_rss_bytes() - rss_before) / 1e9,
               peak_device_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0,
               write_gbs=row_bytes * n_steps / total / 1e9 if kind == "recorded-disk" else None)
    print(json.dumps(out))


def run_child(name, kind, device, args):
    command = [sys.executable, __file__, "--child", name, kind, "--device", device,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                        help="default: the MLPs on the CPU, ResNet-18 on CUDA")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per child (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="children per kind, interleaved (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 60 steps, one round")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "KIND"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default next to this file)")
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, args.device, args.steps, args.warmup, args.threads)
    if args.quick:
        args.steps, args.warmup, args.rounds = 60, 10, 1
    models = args.models or ([m for m in MODELS if m.startswith("mlp")] if args.device == "cpu"
                             else ["resnet18-cifar"])
    rows = []
    for name in models:
        for round_index in range(args.rounds):
            for kind in KINDS:
                row = run_child(name, kind, args.device, args)
                rows.append(dict(row, round=round_index))
                print(f"{name} {kind:16s} round {round_index}: {row['median_step_ms']:.3f} ms",
                      file=sys.stderr, flush=True)
    summary = []
    for name in models:
        mine = [r for r in rows if r["model"] == name]
        median = {k: float(np.median([r["median_step_ms"] for r in mine if r["kind"] == k])) for k in KINDS}
        for kind in KINDS:
            of_kind = [r for r in mine if r["kind"] == kind]
            summary.append(dict(
                model=name, kind=kind, median_step_ms=round(median[kind], 4),
                overhead_vs_plain_forward=round(median[kind] / median["plain+forward"] - 1, 4),
                peak_rss_gb=round(max(r["peak_rss_gb"] for r in of_kind), 4),
                peak_device_gb=round(max(r["peak_device_gb"] for r in of_kind), 4),
                write_gbs=(round(float(np.median([r["write_gbs"] for r in of_kind])), 4)
                           if kind == "recorded-disk" else None)))
    for row in summary:
        print(f"{row['model']:20s} {row['kind']:16s} {row['median_step_ms']:8.3f} ms  "
              f"{100 * row['overhead_vs_plain_forward']:+6.1f} %  rss {row['peak_rss_gb']:.3f} GB"
              + (f"  writes {row['write_gbs']:.3f} GB/s" if row["write_gbs"] else ""))
    import torch

    meta = dict(python=platform.python_version(), torch=torch.__version__, cpu=platform.processor(),
                cores=os.cpu_count(), threads=args.threads, steps=args.steps, warmup=args.warmup,
                rounds=args.rounds, device=args.device)
    out = args.out or HERE / f"results-recording-{args.device.split(':')[0]}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(dict(meta=meta, summary=summary, runs=rows), indent=1))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
