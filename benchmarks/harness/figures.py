"""The shape measurements travel in: a JSON-ready mapping of names to figures.

A plain dict rather than dataclasses, because every figure ends up, unchanged and
in the same key order, in the printed table and in ``result.json``.
"""

from __future__ import annotations

from typing import Any

Figures = dict[str, Any]
