"""Timing and memory reporting shared by the PyTorch bench twins (gpt_bench.py, resnet_bench.py).

A twin times its training step after warm-up steps and prints one JSON line that ResidualLab's
`reslab bench --compare-pytorch` reads: per-step milliseconds, their median, items per second,
peak and resident memory (and on CUDA the peak memory torch allocated), the parameter count.
"""
import json
import time

import torch


def status_bytes(field):
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak), in bytes.

    The peak is VmHWM, as ResidualLab reads it: getrusage's ru_maxrss would start from the parent's
    resident size at fork, so a twin started by reslab would report at least reslab's memory.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def time_steps(step, steps, warmup):
    """Runs step() warmup + steps times; returns the timed steps' milliseconds (sorted) and VmRSS after warm-up."""
    times = []
    rss_after_warmup = 0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
        if i == warmup - 1:
            rss_after_warmup = status_bytes("VmRSS")
    return sorted(times), rss_after_warmup


def report(times, rss_after_warmup, items_per_step, unit, model, device=torch.device("cpu")):
    """Prints the JSON line: median step (the mean of the middle two for an even count), items per second."""
    n = len(times)
    median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_ms_median": median,
        "step_ms": times,
        unit + "s_per_second": items_per_step / (median / 1000),
        "peak_rss_bytes": status_bytes("VmHWM"),
        "rss_after_warmup_bytes": rss_after_warmup,
        "final_rss_bytes": status_bytes("VmRSS"),
        "peak_cuda_allocated_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "parameters": sum(w.numel() for w in model.parameters()),
    }))
