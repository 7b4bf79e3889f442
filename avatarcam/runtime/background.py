"""Background work that must not starve the call: a long job (a portrait's fine-tune) runs in its own process
with a thread budget and the lowest CPU priority the OS offers (Linux: SCHED_IDLE, which runs only on time the
live loop leaves), and reports how far it is through a small JSON file the HUD reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRESS_ENV = "AVATARCAM_PROGRESS"
THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
WINDOWS_IDLE_PRIORITY = 0x40  # IDLE_PRIORITY_CLASS


def _lowest_priority() -> None:  # runs in the child before it starts Python
    os.nice(19)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # nice 19 is what is left


class BackgroundJob:
    """`python -m MODULE ARGS…` at idle priority with `threads` CPU threads."""

    def __init__(self, module: str, args: list[str], threads: int = 1) -> None:
        handle, name = tempfile.mkstemp(prefix="avatarcam-progress-", suffix=".json")
        os.close(handle)
        self.progress_file = Path(name)
        env = {**os.environ, PROGRESS_ENV: name, **{key: str(threads) for key in THREAD_ENVS}}
        command = [sys.executable, "-m", module, *args, "--threads", str(threads)]
        options: dict = {"creationflags": WINDOWS_IDLE_PRIORITY} if sys.platform == "win32" else {}
        if sys.platform != "win32":
            options["preexec_fn"] = _lowest_priority
        self._process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options
        )
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def progress(self) -> float | None:
        """Share done (0 to 1) as the job last reported it; None before its first report."""
        try:
            return float(json.loads(self.progress_file.read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        """How far it is, in a few words: "40%, about 2 min left"."""
        done = self.progress
        if done is None:
            return "starting"
        if done <= 0:
            return "0%"
        if done >= 1:
            return "finishing"
        left = (time.monotonic() - self.started) * (1 - done) / done
        return f"{done:.0%}, " + ("under a minute left" if left < 60 else f"about {round(left / 60)} min left")

    def wait(self) -> int:
        code = self._process.wait()
        self.progress_file.unlink(missing_ok=True)
        return code

    def kill(self) -> None:
        if self.running:
            self._process.kill()
        self._process.wait()
        self.progress_file.unlink(missing_ok=True)


def report_progress(done: int, total: int) -> None:
    """Called by a background job: records how far it is for the parent (a no-op outside a BackgroundJob)."""
    name = os.environ.get(PROGRESS_ENV)
    if not name:
        return
    tmp = f"{name}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"done": done / max(total, 1)}, fh)
    os.replace(tmp, name)
