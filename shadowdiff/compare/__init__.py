"""Pure comparison of two observations into differences. No I/O, no network, no rendering."""

from shadowdiff.compare.observations import compare
from shadowdiff.difference import Difference, DifferenceKind, Severity

__all__ = ["Difference", "DifferenceKind", "Severity", "compare"]
