"""Benchmark of trajectory recording against plain training (see README.md).

    python studies/bench_recording/run.py                 # the digits-sized MLPs on the CPU (about 3 min)
    python studies/bench_recording/run.py --quick         # a smoke run (about 30 s)
    python studies/bench_recording/run.py --device cuda   # ResNet-18, CIFAR-shaped batches, on a GPU

For every model, four kinds of training step on one fixed minibatch:

* ``plain``: ``optimizer_step`` (the step, its loss checked on the host);
* ``plain+forward``: the same and one forward pass on the same minibatch without
  autograd, its loss read: what any same-minibatch ``ΔL`` costs;
* ``recorded-memory``: ``TrajectoryRecorder.step`` into the memory store;
* ``recorded-disk``: the same into a :class:`~granger_prune.record.DiskTrajectory`.

Timing: a fresh child process per model and round holds one model per kind (the
same seed) and takes one step of each kind in turn, ``--warmup`` untimed rounds
and then ``--steps`` timed ones, so every kind meets the same machine state (on a
shared machine, timings taken one kind after the other drift by more than the
differences measured here); the median step of each kind, and over
``--rounds`` children the median of those.  The overhead of recording is the
median recorded step over the median ``plain+forward`` step, minus one.  Memory:
a fresh child per kind; peak host memory is its peak resident set (``VmHWM``)
beyond what it held before the measured steps, peak device memory
``torch.cuda.max_memory_allocated``.  The disk store's ``write_gbs`` is the
bandwidth its writes needed (bytes recorded per second of its recorded steps,
the final flush included).  Writes JSON next to this file.
"""

import argparse
import json
import os
import platform
import shutil
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


def cpu_name():
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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


def make_step(name, kind, device, folder, n_steps):
    """A fresh model (same seed) and the function taking one ``kind`` step of it."""
    import torch

    from granger_prune.record import DiskTrajectory, TrajectoryRecorder, optimizer_step

    model, params, x, y, loss_fn = build(name, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    recorder = None
    if kind == "recorded-memory":
        recorder = TrajectoryRecorder(model, params)
    elif kind == "recorded-disk":
        recorder = TrajectoryRecorder(model, params, trajectory=DiskTrajectory(
            Path(folder) / f"run-{name}", {n: tuple(p.shape) for n, p in params.items()},
            expected_steps=n_steps))

    def one_step():
        if recorder is not None:
            recorder.step(optimizer, loss_fn, x, y)
            return
        optimizer_step(model, optimizer, loss_fn, x, y)
        if kind == "plain+forward":
            with torch.no_grad():
                float(loss_fn(model(x), y))

    row_bytes = 4 * sum(p.numel() for p in params.values())
    return one_step, recorder, row_bytes


def child_timing(name, device, n_steps, warmup, threads):
    """Every kind in this process, one step of each in turn (the machine's state is the
    same for all), and the median step of each; prints a JSON line."""
    import torch

    torch.set_num_threads(threads)
    folder = tempfile.mkdtemp(prefix="bench_recording_", dir=os.environ.get("BENCH_DISK_DIR"))
    steps = {kind: make_step(name, kind, device, folder, n_steps + warmup) for kind in KINDS}
    cuda = device.startswith("cuda")
    times = {kind: [] for kind in KINDS}
    for i in range(warmup + n_steps):
        for kind, (one_step, _, _) in steps.items():
            t0 = time.perf_counter()
            one_step()
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[kind].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    steps["recorded-disk"][1].flush()  # the writes belong to the recording
    flush_s = time.perf_counter() - t0
    disk_s = sum(times["recorded-disk"]) + flush_s
    out = dict(model=name, device=device, n_params_recorded=steps["plain"][2] // 4,
               median_step_ms={k: 1e3 * float(np.median(v)) for k, v in times.items()},
               mean_step_ms={k: 1e3 * float(np.mean(v)) for k, v in times.items()},
               disk_write_gbs=steps["recorded-disk"][2] * n_steps / disk_s / 1e9)
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out))


def child_memory(name, kind, device, n_steps, threads):
    """Peak host and device memory of ``n_steps`` steps of one kind; prints a JSON line."""
    import torch

    torch.set_num_threads(threads)
    folder = tempfile.mkdtemp(prefix="bench_recording_", dir=os.environ.get("BENCH_DISK_DIR"))
    one_step, recorder, _ = make_step(name, kind, device, folder, n_steps + 1)
    one_step()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = peak_rss_bytes()
    for _ in range(n_steps):
        one_step()
    if recorder is not None:
        recorder.flush()
    out = dict(model=name, kind=kind, peak_rss_gb=(peak_rss_bytes() - rss_before) / 1e9,
               peak_device_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0)
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out))


def run_child(args, *child_args):
    command = [sys.executable, __file__, "--child", *child_args, "--device", args.device,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:  # say why: the child's own error, not only its exit status
        raise RuntimeError(f"{' '.join(child_args)} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
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
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default next to this file)")
    args = parser.parse_args(argv)
    if args.child:
        what, *rest = args.child
        if what == "timing":
            return child_timing(rest[0], args.device, args.steps, args.warmup, args.threads)
        return child_memory(rest[0], rest[1], args.device, args.steps, args.threads)
    if args.quick:
        args.steps, args.warmup, args.rounds = 60, 10, 1
    models = args.models or ([m for m in MODELS if m.startswith("mlp")] if args.device == "cpu"
                             else ["resnet18-cifar"])
    timings, memory, summary = [], [], []
    for name in models:
        for round_index in range(args.rounds):
            row = run_child(args, "timing", name)
            timings.append(dict(row, round=round_index))
            print(f"{name} round {round_index}: " + ", ".join(
                f"{k} {v:.3f} ms" for k, v in row["median_step_ms"].items()), file=sys.stderr, flush=True)
        for kind in KINDS:
            memory.append(run_child(args, "memory", name, kind))
        mine = [r for r in timings if r["model"] == name]
        median = {k: float(np.median([r["median_step_ms"][k] for r in mine])) for k in KINDS}
        for kind in KINDS:
            peaks = next(m for m in memory if m["model"] == name and m["kind"] == kind)
            summary.append(dict(
                model=name, kind=kind, median_step_ms=round(median[kind], 4),
                overhead_vs_plain_forward=round(median[kind] / median["plain+forward"] - 1, 4),
                peak_rss_gb=round(peaks["peak_rss_gb"], 4), peak_device_gb=round(peaks["peak_device_gb"], 4),
                write_gbs=(round(float(np.median([r["disk_write_gbs"] for r in mine])), 4)
                           if kind == "recorded-disk" else None)))
    for row in summary:
        print(f"{row['model']:20s} {row['kind']:16s} {row['median_step_ms']:8.3f} ms  "
              f"{100 * row['overhead_vs_plain_forward']:+6.1f} %  rss {row['peak_rss_gb']:.3f} GB"
              + (f"  writes {row['write_gbs']:.3f} GB/s" if row["write_gbs"] else ""))
    import torch

    meta = dict(python=platform.python_version(), torch=torch.__version__, cpu=cpu_name(),
                cores=os.cpu_count(), threads=args.threads, steps=args.steps, warmup=args.warmup,
                rounds=args.rounds, device=args.device)
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench_recording_quick_")) / "results.json"
                       if args.quick else HERE / f"results-recording-{args.device.split(':')[0]}.json")
    out.write_text(json.dumps(dict(meta=meta, summary=summary, timings=timings, memory=memory), indent=1))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
