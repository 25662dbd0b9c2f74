"""Pure rule detectors: an event or a feature vector in, signals out. No I/O."""

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
    "Tier1Rule",
    "detect_cancellation",
    "detect_tier1",
    "parse_tier1_rules",
]
