"""Pure comparison of two observations into differences. No I/O, no network, no rendering."""

from shadowdiff.compare.difference import Difference, DifferenceKind, Severity
from shadowdiff.compare.observations import compare

__all__ = ["Difference", "DifferenceKind", "Severity", "compare"]
