"""What every results file states the same way: per-round ratios with their spread, the
load the shared machine was under, and which targets apply to the file, met or not.

A ratio of two medians hides how far single rounds wander on a busy 2-core machine, and
mixing best rounds with median ratios gives figures that do not divide into each other;
so each round's pair gives one ratio, and the file reports their median and range.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass


@dataclass
class PairedRatios:
    ratios: list[float]          # ours / theirs, one per round, in round order

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def describe(self) -> str:
        return (f"{self.median:.3f} (median of {len(self.ratios)} per-round ratios, "
                f"range {min(self.ratios):.3f}-{max(self.ratios):.3f})")


def paired(ours: list[float], theirs: list[float]) -> PairedRatios:
    """Speeds (higher is better) measured in the same rounds."""
    assert len(ours) == len(theirs) and ours
    return PairedRatios([o / t for o, t in zip(ours, theirs)])


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def targets(lines: list[tuple[str, bool]], applies_to: str) -> str:
    """'Targets that apply to <what>: a (met); b (MISSED).'"""
    said = "; ".join(f"{text} ({'met' if ok else 'MISSED'})" for text, ok in lines)
    return f"Targets that apply to {applies_to}: {said}."
