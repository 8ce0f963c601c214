"""The core works without PyTorch; deep models then fail with the install command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import recforge

BLOCKER = """\
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked for the test)")
        return None


sys.meta_path.insert(0, _NoTorch())
"""

SCRIPT = """\
import sys

import recforge
import recforge.models
from recforge.exceptions import MissingDependencyError
from recforge.models import model_class
from recforge.testing import toy_dataset

assert "torch" not in sys.modules
data = toy_dataset(explicit=False)
for name in ("popular", "ease"):
    model = model_class(name)().fit(data)
    assert model.recommend(["u0"], k=3).lengths[0] == 3
for name in ("sasrec", "multvae", "twotower"):
    cls = model_class(name)  # the class itself imports without torch
    try:
        cls()
    except MissingDependencyError as exc:
        assert "pip install 'recforge[deep]'" in str(exc), exc
    else:
        raise AssertionError(f"{name} was constructed without torch")
assert "torch" not in sys.modules
print("ok")
"""


def test_core_without_torch(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    package_root = Path(recforge.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(package_root)]),
        "OMP_NUM_THREADS": "1",
    }
    blocked = subprocess.run(
        [sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True
    )
    assert blocked.returncode != 0
    assert "blocked for the test" in blocked.stderr
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
