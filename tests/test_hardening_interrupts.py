"""Issue 25, interrupts: Ctrl+C (a real SIGINT to a real process) cancels a run within a step,
exits 130, never aborts, and leaves no partial or temp file, wherever it lands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"
UPSTREAM = ("Load model", "Positive prompt", "Negative prompt", "Empty latent", "Noise",
            "Scheduler")


class Reader:
    """Collects a pipe's lines on a thread, so the test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate("".join(self.lines)):
                return True
            time.sleep(0.05)
        return False

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


def _start_long_run(tiny_sd, out: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nodeeditor.cli", "run", str(TXT2IMG), "--set",
         f"Load model.source={tiny_sd}", "--set", "Empty latent.width=128", "--set",
         "Empty latent.height=128", "--set", "Scheduler.steps=1000", "--output-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _sampling(text: str) -> bool:
    return all(f"{title}: done" in text for title in UPSTREAM)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_ctrl_c_during_sampling_cancels_cleanly(tiny_sd, tmp_path):
    out = tmp_path / "out"
    proc = _start_long_run(tiny_sd, out)
    err = Reader(proc.stderr)
    assert err.wait_for(_sampling, 300), err.text()
    time.sleep(1.0)  # well inside the 1000 steps
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(120)
    stderr = err.text()
    assert rc == 130, stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr
    assert "UNet denoise: done" not in stderr  # stopped mid-sampling, not after it
    assert stderr.rstrip().endswith("cancelled")
    assert _leftovers(out) == []  # no image, no temp file


def test_a_second_ctrl_c_leaves_at_once_and_cleanly(tiny_sd, tmp_path):
    out = tmp_path / "out"
    proc = _start_long_run(tiny_sd, out)
    err = Reader(proc.stderr)
    assert err.wait_for(_sampling, 300), err.text()
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(120)
    stderr = err.text()
    assert rc == 130 and "terminate called" not in stderr and "Traceback" not in stderr
    assert _leftovers(out) == []


_SLOW_SAVE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from graphs import safe_io
    from nodeeditor.cli import run_interruptible
    target = Path(sys.argv[1])

    def slow_writer(handle):
        for index in range(10_000):
            handle.write(b"x" * 1024 * 1024)
            if index == 2:
                print("writing", flush=True)
            time.sleep(0.01)

    def work():
        safe_io.write_atomic(target, slow_writer)
    run_interruptible(work, cancel=lambda: None)
    print("finished", flush=True)
""")


def test_ctrl_c_during_a_large_save_leaves_no_temp_file(tmp_path):
    """A save in a run's worker thread (as Save image is), interrupted twice mid-write: exit 130,
    the old file intact, no .tmp left."""
    target = tmp_path / "big.png"
    target.write_bytes(b"old contents")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = Reader(proc.stdout)
    assert out.wait_for(lambda text: "writing" in text, 60)
    proc.send_signal(signal.SIGINT)  # the first asks the run to cancel; a save is not a step
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the second leaves now
    rc = proc.wait(60)
    stderr = proc.stderr.read()
    assert rc == 130 and "terminate called" not in stderr and "finished" not in out.text()
    assert os.listdir(tmp_path) == ["big.png"] and target.read_bytes() == b"old contents"


_MAIN_THREAD_SAVE = textwrap.dedent("""
    import sys, time
    from graphs import safe_io

    def slow_writer(handle):
        for index in range(10_000):
            handle.write(b"x" * 1024 * 1024)
            if index == 2:
                print("writing", flush=True)
            time.sleep(0.01)
    safe_io.write_atomic(sys.argv[1], slow_writer)
""")


def test_keyboard_interrupt_inside_a_save_on_the_main_thread_removes_the_temp(tmp_path):
    """The editor saves on its GUI thread: a KeyboardInterrupt there unwinds through the save."""
    target = tmp_path / "flow.json"
    target.write_text("{}")
    proc = subprocess.Popen([sys.executable, "-c", _MAIN_THREAD_SAVE, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = Reader(proc.stdout)
    assert out.wait_for(lambda text: "writing" in text, 60)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert os.listdir(tmp_path) == ["flow.json"] and target.read_text() == "{}"
