"""A sweep backend that runs cells on Ray actors (``pip install latentgraph[ray]``).

One actor per GPU (or one per ``cpus_per_worker`` cores on a CPU-only cluster); each owns a
:class:`~nodes.sweep_cells.CellRunner`, so its Executor cache keeps models loaded between
cells. The submitting side hands a worker one cell at a time, preferring cells whose model
that worker already has (affinity by the Load model params), and gets images back as uint8
arrays as cells finish; it writes every file itself. A worker process that dies mid-cell is
replaced and the cell goes back to the front of the queue; a cell that fails by itself comes
back as a failed outcome. ``ray`` is imported only when a RayBackend is made.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .sweep_cells import Job

INSTALL_HINT = "--ray needs Ray, which is not installed: pip install latentgraph[ray]"
MAX_ATTEMPTS = 3  # a cell whose worker died this many times is recorded as failed


class RayUnavailable(RuntimeError):
    pass


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return ray


class SweepWorker:
    """The actor body (made remote in :meth:`RayBackend._spawn`)."""

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        from .sweep_cells import CellRunner

        torch.set_num_threads(max(1, threads))
        self.runner = CellRunner()

    def info(self) -> dict[str, Any]:
        from .model_folders import ENV_MODELS

        return {"pid": os.getpid(), "name": self.runner.name, "models_dir": os.environ.get(ENV_MODELS, "")}

    def run_cell(self, job: Job) -> dict[str, Any]:
        return self.runner.run(job)


@dataclass
class Worker:
    handle: Any
    name: str = ""
    pid: int = 0
    loaded: set[str] = field(default_factory=set)  # model keys this actor has loaded


def pick_job(loaded: set[str], busy_keys: set[str], pending: list[Job]) -> int:
    """Index in ``pending`` of the next job for a worker holding ``loaded`` models: one whose
    model it has; else one whose model no other worker is busy with; else the first."""
    for i, job in enumerate(pending):
        if job.model_key in loaded:
            return i
    for i, job in enumerate(pending):
        if job.model_key not in busy_keys:
            return i
    return 0


class RayBackend:
    name = "ray"

    def __init__(self, address: str = "local", cpus_per_worker: int = 1, max_workers: int | None = None,
                 temp_dir: str | None = None) -> None:
        ray = self.ray = import_ray()
        self._started_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                       "log_to_driver": False}
            if address == "local":
                ray.init(_temp_dir=temp_dir or f"/tmp/ray-latentgraph-{os.getuid()}", **options)
            else:
                ray.init(address=address, **options)
            self._started_ray = True
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.cpus_per_worker = max(1, int(cpus_per_worker))
        if gpus:
            count, self._actor_options = gpus, {"num_gpus": 1, "num_cpus": 1}
        else:
            count = max(1, cpus // self.cpus_per_worker)
            self._actor_options = {"num_cpus": self.cpus_per_worker}
        if max_workers:
            count = min(count, max_workers)
        # The models folders this sweep names files in (--models-dir sets them in our environment);
        # workers on other machines need the same paths, on shared storage.
        from .model_folders import ENV_EXTRA, ENV_MODELS

        folders = {k: os.environ[k] for k in (ENV_MODELS, ENV_EXTRA) if os.environ.get(k)}
        if folders:
            self._actor_options["runtime_env"] = {"env_vars": folders}
        self._remote_cls = ray.remote(max_restarts=0, max_task_retries=0, **self._actor_options)(SweepWorker)
        self.workers = [self._spawn() for _ in range(count)]
        self.node_runs: Counter[str] = Counter()
        self.restarts = 0
        self.attempts: dict[int, int] = {}  # cell index -> times handed to a worker
        self._cancel = threading.Event()

    def _spawn(self) -> Worker:
        handle = self._remote_cls.remote(self.cpus_per_worker)
        return Worker(handle)

    def worker_info(self, worker: Worker) -> Worker:
        if not worker.pid:
            info = self.ray.get(worker.handle.info.remote())
            worker.name, worker.pid = info["name"], info["pid"]
        return worker

    def cancel(self) -> None:
        self._cancel.set()

    def run(self, jobs: list[Job], on_result: Callable[[Job, dict[str, Any]], None],
            on_started: Callable[[Job, str], None] | None = None) -> None:
        ray = self.ray
        dead_errors = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
        pending = list(jobs)
        inflight: dict[Any, tuple[Worker, Job]] = {}
        idle = list(self.workers)
        while (pending or inflight) and not self._cancel.is_set():
            while idle and pending:
                worker = idle.pop(0)
                busy = {job.model_key for _w, job in inflight.values()}
                job = pending.pop(pick_job(worker.loaded, busy, pending))
                job.attempts += 1
                self.attempts[job.index] = job.attempts
                inflight[worker.handle.run_cell.remote(job)] = (worker, job)
                if on_started:
                    on_started(job, worker.name or "starting worker")
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            for ref in ready:
                worker, job = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except dead_errors as exc:
                    idle.append(self._replace(worker))
                    if job.attempts < MAX_ATTEMPTS:
                        pending.insert(0, job)
                    else:
                        on_result(job, {"index": job.index, "status": "failed", "images": [],
                                        "worker": worker.name,
                                        "error": f"its worker died {job.attempts} times: "
                                                 f"{type(exc).__name__}"})
                    continue
                except ray.exceptions.RayTaskError as exc:  # a bug outside the node runs
                    outcome = {"index": job.index, "status": "failed", "images": [],
                               "worker": worker.name, "error": str(exc.cause or exc)}
                self.node_runs.update(outcome.get("node_runs", {}))
                if outcome.get("status") == "done":
                    worker.loaded.add(job.model_key)
                worker.name = outcome.get("worker") or worker.name
                idle.append(worker)
                on_result(job, outcome)
        if self._cancel.is_set():
            for ref in inflight:
                ray.cancel(ref)

    def _replace(self, worker: Worker) -> Worker:
        try:
            self.ray.kill(worker.handle)
        except Exception:  # already gone
            pass
        fresh = self._spawn()
        self.workers = [fresh if w is worker else w for w in self.workers]
        self.restarts += 1
        return fresh

    def close(self) -> None:
        for worker in self.workers:
            try:
                self.ray.kill(worker.handle)
            except Exception:
                pass
        self.workers = []
        if self._started_ray:
            self.ray.shutdown()
