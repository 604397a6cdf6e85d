"""The editor's first run after launch: open the app on the bundled workflow, wait as a user
would, press Run, time it; and how smooth the GUI stays meanwhile.

    QT_QPA_PLATFORM=offscreen python bench/first_run.py [--wait 6] [--no-prepare]

``--no-prepare`` skips what the app does while its window opens (importing torch and diffusers
on the run thread), for the comparison. Run each case in a fresh process (imports are the point).
Last line: JSON with window_shown_s, first_run_s, gui_gap_p99_ms, gui_gap_max_ms.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

START = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, default=6.0, help="seconds between launch and Run")
    parser.add_argument("--no-prepare", action="store_true")
    args = parser.parse_args()

    from PySide6.QtCore import QStandardPaths
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    QStandardPaths.setTestModeEnabled(True)  # no autosave recovery, no user settings
    import nodeeditor.worker as worker

    if args.no_prepare:
        worker.RunWorker.prepare = lambda self, work: None
    from nodeeditor.app import open_main_window

    window = open_main_window(output_dir=tempfile.mkdtemp())
    shown = time.perf_counter() - START

    def pump(until) -> list[float]:
        """Keep the event loop turning (repainting the canvas) and note each turn's length."""
        gaps, last = [], time.perf_counter()
        while not until():
            app.processEvents()
            window.view.viewport().repaint()
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.005)
        return gaps

    deadline = time.perf_counter() + args.wait
    gaps = pump(lambda: time.perf_counter() >= deadline)
    start = time.perf_counter()
    window.runs.run()
    gaps += pump(lambda: not (window.worker.busy or window.runs.running))
    first_run = time.perf_counter() - start
    gaps.sort()
    result = window.runs.last_result
    window.worker.shutdown()
    print(json.dumps({
        "prepare": not args.no_prepare, "wait_s": args.wait, "window_shown_s": round(shown, 2),
        "first_run_s": round(first_run, 2), "status": result.status if result else None,
        "gui_gap_p99_ms": round(1e3 * gaps[int(0.99 * (len(gaps) - 1))], 1),
        "gui_gap_max_ms": round(1e3 * gaps[-1], 1)}))


if __name__ == "__main__":
    main()
