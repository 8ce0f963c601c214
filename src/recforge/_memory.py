"""How much memory this process may still use: the machine's available memory, capped by a
cgroup (container) limit when one is set. Imports only the standard library."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["available_memory_bytes", "format_bytes"]

_CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            raw = limit_file.read_text().strip()
            if raw == "max":
                return None
            limit, usage = int(raw), int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # "no limit" written as a huge number
            return None
        return max(limit - usage, 0)
    return None


def available_memory_bytes() -> int | None:
    """Bytes this process can still allocate without swapping, or ``None`` when unknown."""
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not found and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human figure (``"3.2 GiB"``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
