"""A layer too large for memory: recorded to the disk store, its design written to a file,
and the lasso fitted from the file (see README.md).

    python studies/bench_recording/large_layer.py --d 4000000 --T 1000 --dir /work/big
    python studies/bench_recording/large_layer.py --quick        # d = 2e5, T = 200 (a minute)
    python studies/bench_recording/large_layer.py --dtype bfloat16   # steps stored in bfloat16
    python studies/bench_recording/large_layer.py --d 10000000 --dtype bfloat16 --lazy  # no design copy
    python studies/bench_recording/large_layer.py --d 10000000 --device cuda  # trained and fitted on a GPU
    python studies/bench_recording/large_layer.py --d 4000000 --device cuda --store device  # never on the host

One ``nn.Linear(n_in, d / n_in, bias=False)`` layer (``d`` weights) is trained by SGD
(momentum 0.9) on a random regression task for ``T`` steps, recorded into a
:class:`~granger_prune.record.DiskTrajectory`; then ``granger_design(...,
out=...)`` writes ``X = (Δθ)²`` (float32) to a ``.npy`` file block by block, and
:class:`~granger_prune.CausalLasso` is fitted on its memory map at ``alpha =
0.05 alpha_max``.  Reported: the times of the three phases, the peak resident
anonymous memory of the process (``RssAnon``
sampled every 20 ms: the memory maps' page cache is not the process's), the bytes of the store and the design, the
solver's passes over ``X`` and their bandwidth, and the disk's own sequential
read bandwidth measured on the design file with its pages dropped from the page
cache first (``posix_fadvise(DONTNEED)``).  With ``--lazy`` no design file is
written: ``granger_design(..., lazy=True)`` computes ``X``'s columns from the store
on every pass (one pass first, for the row summaries), the passes are over the
store's bytes and the disk's bandwidth is measured on the store's file.  With
``--device cuda`` the layer trains and is recorded on the GPU (the recorder's device
buffer), and the lasso is fitted there (CuPy): the design copied to the device whole
when it fits in half its free memory, else streamed a block of columns per pass
(:mod:`granger_prune.placement`); the copy's time and the peak device memory are
reported.  With ``--store device`` the steps stay in a
:class:`~granger_prune.record.DeviceTrajectory` on the layer's device instead of
going to disk: the design is built there from them (float64, in memory), the steps
are then freed, and the lasso is fitted from the device design; there is no disk
read to compare with.  Writes JSON next to this file.
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
READ_BLOCK = 1 << 26


def anonymous_rss_gb():
    """The process's resident anonymous memory (``RssAnon``: not the page cache of the
    memory-mapped files, which the kernel reclaims at will), in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


class PeakMemory:
    """The largest :func:`anonymous_rss_gb` seen, sampled every 20 ms by a thread."""

    def __init__(self):
        self.peak = anonymous_rss_gb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, anonymous_rss_gb())

    def phase(self):
        """The peak since the last call (or the start); a new phase begins."""
        peak, self.peak = max(self.peak, anonymous_rss_gb()), anonymous_rss_gb()
        return peak

    def stop(self):
        self._stop.set()
        self._thread.join()
        return max(self.peak, anonymous_rss_gb())


def drop_from_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold_read_gbs(path):
    """Sequential read bandwidth of ``path`` with its pages dropped from the cache first."""
    drop_from_cache(path)
    buffer = bytearray(READ_BLOCK)
    total, start = 0, time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while (n := f.readinto(buffer)):
            total += n
    return total / (time.perf_counter() - start) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=4_000_000, help="weights of the layer (default 4e6)")
    parser.add_argument("--T", type=int, default=1000, help="recorded steps (default 1000)")
    parser.add_argument("--n-in", type=int, default=2000, help="inputs of the layer (default 2000)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--quick", action="store_true", help="d = 2e5, T = 200")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="how the store keeps the steps (default float32)")
    parser.add_argument("--lazy", action="store_true",
                        help="no design file: X computed from the store on every pass")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the layer trains and "
                        "the lasso is fitted (default cpu)")
    parser.add_argument("--store", default="disk", choices=["disk", "device"],
                        help="where the steps are recorded: the disk store (default) or the "
                        "layer's device (DeviceTrajectory; no --lazy or --dtype)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.store == "device" and (args.lazy or args.dtype != "float32"):
        parser.error("--store device keeps float32 steps and builds the design in memory: "
                     "no --lazy or --dtype")
    if args.quick:
        args.d, args.T, args.n_in = 200_000, 200, 500
    import tempfile

    import torch
    from torch import nn

    from granger_prune import CausalLasso
    from granger_prune.design import granger_design
    from granger_prune.lasso.problem import Problem
    from granger_prune.placement import place, running_on
    from granger_prune.record import (DeviceTrajectory, DiskTrajectory, TrajectoryRecorder,
                                      trajectory_bytes)

    torch.set_num_threads(2)
    memory = PeakMemory()
    folder = Path(tempfile.mkdtemp(prefix="large_layer_", dir=args.dir))
    n_out = args.d // args.n_in
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = nn.Linear(args.n_in, n_out, bias=False).to(device)
    teacher = (torch.randn(n_out, args.n_in) / np.sqrt(args.n_in)).to(device)
    params = {"weight": model.weight}
    shapes = {"weight": tuple(model.weight.shape)}
    store = (DeviceTrajectory(shapes, device, capacity=args.T) if args.store == "device" else
             DiskTrajectory(folder / "trajectory", shapes, expected_steps=args.T, dtype=args.dtype))
    recorder = TrajectoryRecorder(model, params, trajectory=store)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for _ in range(args.T):
        x = torch.randn(args.batch, args.n_in, generator=g).to(device)
        recorder.step(optimizer, nn.functional.mse_loss, x, x @ teacher.T)
    recorder.close()
    record_s = time.perf_counter() - start
    record_device_gb = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0
    record_peak = memory.phase()
    store_bytes = trajectory_bytes(store.shapes, store.n_steps, args.dtype)
    print(f"recorded {args.T} steps of {args.d:,} weights ({store_bytes / 1e9:.1f} GB) in "
          f"{record_s:.1f} s", file=sys.stderr, flush=True)

    start = time.perf_counter()
    if args.store == "device":
        design = granger_design(store)
        if device.type == "cuda":
            import cupy

            cupy.cuda.Device().synchronize()
    else:
        stored = DiskTrajectory.open(folder / "trajectory")
        design = (granger_design(stored, lazy=True) if args.lazy else
                  granger_design(stored, out=folder / "X.npy"))
    design_s = time.perf_counter() - start
    design_peak = memory.phase()
    X, y = design.X, design.y
    print(f"design {X.shape} {'summarised' if args.lazy else 'written'} in {design_s:.1f} s",
          file=sys.stderr, flush=True)
    disk_gbs = float("nan")
    if args.store == "disk":
        read_files = sorted((folder / "trajectory").rglob("*.npy")) if args.lazy else [folder / "X.npy"]
        read_files = [max(read_files, key=lambda f: f.stat().st_size)]  # the steps (or the design)
        disk_gbs = cold_read_gbs(read_files[0])
        drop_from_cache(read_files[0])
    else:
        store.clear()  # the design holds what the fit needs
    del model, optimizer, recorder  # the device memory training held, for the fit
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with running_on(None if device.type == "cpu" else str(device)) as xp:
        start = time.perf_counter()
        X_fit, y_fit = place(X, xp, y)  # the same arrays on the host
        if xp is not np:
            xp.cuda.Device().synchronize()
        place_s = time.perf_counter() - start
        start = time.perf_counter()
        problem = Problem(X_fit, y_fit)  # what alpha_max(X, y) does, with its passes counted
        a_max = problem.alpha_max()
        model_fit = CausalLasso(alpha=0.05 * a_max).fit(X_fit, y_fit)
        fit_s = time.perf_counter() - start
        fit_device_gb = xp.get_default_memory_pool().total_bytes() / 1e9 if xp is not np else 0.0
        placed = type(X_fit).__name__
        passes = int(model_fit.n_passes_) + problem.design.n_passes  # and alpha_max's passes
        del X_fit, y_fit, problem
    fit_peak = memory.phase()
    x_bytes = int(np.prod(X.shape)) * np.dtype(X.dtype).itemsize  # float32, or float64 on the device
    read_bytes = store_bytes if args.lazy else x_bytes  # what one pass reads
    result = dict(
        d=args.d, T=args.T, store=args.store, store_dtype=args.dtype, lazy=args.lazy, rows=int(X.shape[0]),
        device=str(device), fit_design=placed, place_s=place_s, record_device_gb=record_device_gb,
        fit_device_pool_gb=fit_device_gb,
        store_gb=store_bytes / 1e9, design_gb=0.0 if args.lazy else x_bytes / 1e9,
        read_per_pass_gb=read_bytes / 1e9, design_decoded_gbs=x_bytes * passes / fit_s / 1e9,
        record_s=record_s, record_write_gbs=store_bytes / record_s / 1e9, design_s=design_s,
        fit_s=fit_s, passes=passes, pass_gbs=read_bytes * passes / fit_s / 1e9,
        disk_read_gbs=disk_gbs, n_nonzero=int(np.count_nonzero(model_fit.coef_)),
        peak_anonymous_gb=max(record_peak, design_peak, fit_peak, memory.stop()),
        peak_anonymous_gb_by_phase=dict(record=record_peak, design=design_peak, fit=fit_peak), ram_gb=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9)
    result["pass_vs_disk"] = result["pass_gbs"] / disk_gbs
    print(json.dumps(result, indent=1))
    out = args.out or (Path(tempfile.mkdtemp(prefix="large_layer_quick_")) / "results.json"
                       if args.quick else HERE / ("results-large-layer" +
                                                  ("" if args.dtype == "float32" else f"-{args.dtype}") +
                                                  ("-lazy" if args.lazy else "") +
                                                  ("-device-store" if args.store == "device" else "") +
                                                  ("" if args.device == "cpu" else "-cuda") + ".json"))
    out.write_text(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
