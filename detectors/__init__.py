"""Pure rule detectors: an event or a feature vector in, signals out. No I/O.

Their rules are data: :func:`compile_detectors` turns the definitions file's
signals, tier-1 rules and lifecycle mapping into them (see README, "Signals").
"""

from detectors.definitions import DetectorRules, compile_detectors
from detectors.lifecycle import LifecycleRules
from detectors.tier1 import (
    DEFAULT_TIER1_RULES,
    Tier1Rule,
    detect_cancellation,
    detect_tier1,
    parse_tier1_rules,
)
from schemas.lifecycle import Cancellation

__all__ = [
    "DEFAULT_TIER1_RULES",
    "Cancellation",
    "DetectorRules",
    "LifecycleRules",
    "Tier1Rule",
    "compile_detectors",
    "detect_cancellation",
    "detect_tier1",
    "parse_tier1_rules",
]
