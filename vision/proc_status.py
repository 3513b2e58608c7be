"""Memory figures of a process from Linux's /proc/<pid>/status, for the memory benchmarks and the
leak tests: one reader, so they all mean the same VmRSS (resident now) and VmHWM (peak)."""

from __future__ import annotations

from pathlib import Path


def status_kb(field: str, pid: int | str = "self") -> int | None:
    """The field (e.g. "VmRSS", "VmHWM") in KiB; None where the process or the field is not there
    (gone, or not Linux)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory in MiB; NaN where it cannot be read, so a figure is never made up."""
    kb = status_kb("VmRSS", pid)
    return float("nan") if kb is None else kb / 1024
