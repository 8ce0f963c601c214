"""Automation: ``recforge.yaml`` configs, the run pipeline, tuning, AutoRec and the report.

Submodules are imported on first use so ``import recforge.pipeline`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RunConfig", "auto", "build_report", "load_config", "run", "tune"]

_LAZY = {
    "RunConfig": "recforge.pipeline.config",
    "load_config": "recforge.pipeline.config",
    "run": "recforge.pipeline.runner",
    "tune": "recforge.pipeline.tuning",
    "auto": "recforge.pipeline.auto",
    "build_report": "recforge.pipeline.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recforge.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
