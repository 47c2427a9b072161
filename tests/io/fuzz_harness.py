"""Run inputs through ``discover`` + ``load_volume`` in worker subprocesses, with limits.

Each worker reads case paths (one per line) on stdin and answers one JSON line per case: what
happened and the peak RSS of that case (``VmHWM`` after resetting it through
``/proc/self/clear_refs``). The worker runs under an address-space limit (``RLIMIT_AS``); the
parent gives each case a timeout. A case that kills the worker is a ``crash``; one that runs past
the timeout is a ``hang``; either way a fresh worker takes the remaining cases.

Outcomes: ``ok`` (a volume with finite data and an invertible affine, or nothing to load),
``typed`` (a medzsad error), ``untyped`` (anything else: a bug), ``wrong`` (a volume that is
silently unusable: NaN voxels, singular or non-finite affine), ``hang``, ``crash``.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
STARTUP_S = 300.0  # imports on a loaded machine; cases are timed only after the worker says "ready"
BAD = ("untyped", "wrong", "hang", "crash")


@dataclass(frozen=True)
class CaseResult:
    """What one input did."""

    case: str
    outcome: str
    detail: str = ""
    peak_rss_mb: float = 0.0
    seconds: float = 0.0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check_volume(v: object) -> str:
    import numpy as np

    data = v.data  # type: ignore[attr-defined]
    affine = v.affine_ras  # type: ignore[attr-defined]
    if not np.all(np.isfinite(data)):
        return "non-finite voxels"
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        return "singular or non-finite affine"
    return ""


def _one_case(path: str) -> tuple[str, str]:
    from medzsad.errors import MedzsadError
    from medzsad.io.discovery import discover
    from medzsad.io.readers import load_volume

    try:
        found = discover(path)
        refs = [s for st in found.studies for s in st.series][:4]
        for ref in refs:
            try:
                problem = _check_volume(load_volume(ref))
            except MedzsadError:
                continue
            if problem:
                return "wrong", problem
        if os.path.isfile(path):
            try:
                problem = _check_volume(load_volume(path))
            except MedzsadError as e:
                return "typed", type(e).__name__
            if problem:
                return "wrong", problem
        return "ok", ""
    except MedzsadError as e:
        return "typed", type(e).__name__
    except BaseException as e:  # noqa: BLE001 - the point is to see what escapes
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return "untyped", f"{type(e).__module__}.{type(e).__name__}: {str(e)[:200]}"


def worker_main(voxel_limit: int) -> None:
    """Answer cases from stdin until it closes."""
    import logging
    import warnings

    import medzsad.io.readers  # noqa: F401 - imported before "ready" so cases are timed alone
    from medzsad.io.limits import ReadLimits, use_limits

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with use_limits(ReadLimits.of_bytes(voxel_limit)):
        for line in sys.stdin:
            path = line.rstrip("\n")
            _reset_peak()
            t0 = time.perf_counter()
            outcome, detail = _one_case(path)
            rec = {"case": path, "outcome": outcome, "detail": detail, "peak_rss_mb": _peak_mb()}
            rec["seconds"] = time.perf_counter() - t0
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()


def _limit_as(as_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _start(as_bytes: int, voxel_limit: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONFAULTHANDLER="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["SITK_NUMBER_OF_THREADS"] = "1"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", str(voxel_limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: _limit_as(as_bytes),
        env=env,
    )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used; 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class _Lines:
    """Lines from the worker's stdout through ``os.read`` (a buffered readline would hide lines
    that already arrived from ``select``, and the parent would wait for nothing)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc, self.fd, self.buf = proc, proc.stdout.fileno(), b""

    def next(self, timeout_s: float, wall_factor: float = 10.0) -> str | None:
        """The next line ('' when the worker died), or None when the case hangs.

        A hang is ``timeout_s`` of worker CPU time without an answer, or ``wall_factor`` x
        ``timeout_s`` of wall time (blocked without using CPU): on a loaded machine a case starved
        of CPU is not a hang.
        """
        cpu0, t0 = _cpu_s(self.proc.pid), time.monotonic()
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout_s)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return ""
                self.buf += chunk
            elif (
                _cpu_s(self.proc.pid) - cpu0 >= timeout_s or time.monotonic() - t0 >= wall_factor * timeout_s
            ):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode() + "\n"


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def run_cases(
    paths: list[str],
    *,
    timeout_s: float = 20.0,
    as_bytes: int = 4 * GIB,
    voxel_limit: int = 256 << 20,
    batch: int = 200,
) -> list[CaseResult]:
    """Run every path through workers, ``batch`` cases per worker (pipes stay under their buffers)."""
    out: list[CaseResult] = []
    for i in range(0, len(paths), batch):
        out += _run_batch(paths[i : i + batch], timeout_s, as_bytes, voxel_limit)
    return out


def _run_batch(paths: list[str], timeout_s: float, as_bytes: int, voxel_limit: int) -> list[CaseResult]:
    """Run paths through a worker; a crash or hang restarts the worker for the rest."""
    results: list[CaseResult] = []
    todo = list(paths)
    while todo:
        proc = _start(as_bytes, voxel_limit)
        assert proc.stdin is not None and proc.stdout is not None
        lines = _Lines(proc)
        if (lines.next(STARTUP_S, wall_factor=1.0) or "").strip() != "ready":
            _stop(proc)
            raise RuntimeError(f"fuzz worker did not start within {STARTUP_S} s")
        for p in todo:
            proc.stdin.write(p + "\n")
        proc.stdin.close()
        while todo:
            line = lines.next(timeout_s)
            if line:
                rec = json.loads(line)
                results.append(CaseResult(**rec))
                todo.pop(0)
                continue
            if line is None:
                results.append(CaseResult(todo.pop(0), "hang", f"no answer in {timeout_s:g} s"))
            else:
                rc = proc.wait()
                results.append(CaseResult(todo.pop(0), "crash", f"worker exit status {rc}"))
            _stop(proc)
            break
        else:
            _stop(proc)
    return results


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    worker_main(int(sys.argv[2]))
