"""Shared helpers for the benchmarks: timing, graph construction, memory and page-cache state."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_time(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class DeviceMemory:
    """Peak device memory between resets (zero on the CPU, where it is not tracked)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        if not self.cuda:
            return 0.0
        import torch

        return torch.cuda.max_memory_allocated() / 2**30


# ----- memory and page cache (Linux /proc) ------------------------------------------------
def warm_page_cache(file: Path) -> None:
    with open(file, "rb") as handle:
        while handle.read(1 << 24):
            pass


def rss_gib() -> tuple[float, float]:
    """(current, peak) resident set size of this process."""
    fields = {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith(("VmRSS", "VmHWM"))}
    return fields["VmRSS"] / 2**20, fields["VmHWM"] / 2**20


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


class PeakAnon:
    """Peak anonymous resident memory (the process's own copies, not the page cache it maps),
    sampled every 5 ms on a thread."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
