"""Adversarial id texts for tests and fuzzing of the service."""

from __future__ import annotations

import random
import unicodedata

__all__ = ["ADVERSARIAL_IDS", "adversarial_id"]

ADVERSARIAL_IDS: list[str] = [
    "--1", "²", "①", "١٢", "01", "-0", " 104", "104 ", "1_04", "+104", "１０４", "104\u200b",
    "1e2", "0x68", "\u202e104", "e\u0301", "🎬", "ǅ", "\ufeff104", "9" * 25, "-" + "9" * 19,
]  # fmt: skip
"""Texts that look like integers to ``str.isdigit``, ``int()`` or a reader without being an
id's one spelling (see ``IdIndex.parse_int_ids``), and Unicode that plays with display."""

_CATEGORIES = ("Nd", "No", "Nl", "Zs", "Cf", "Pd")
_POOL = [
    c for c in map(chr, range(0x20, 0x3000)) if unicodedata.category(c) in _CATEGORIES and c != "%"
] + list("0123456789-")


def adversarial_id(rng: random.Random, max_len: int = 12) -> str:
    """A random id of digits of any script, number signs, spaces, format marks and dashes."""
    n = rng.randint(1, max_len)
    return "".join(rng.choice(_POOL) for _ in range(n))
