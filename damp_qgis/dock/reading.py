"""The reading of the degradation: one sentence, the family probabilities, and the evidence.

What it shows is ``damp_engine.read_raster``'s ``Reading`` for the inspected layer (or
window): the same reading ``damp prompt`` prints and the *Degradation prompt* algorithm outputs.
"""
from __future__ import annotations

import html

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel, QWidget

SHOWN_PROBABILITY = 0.05  # families less likely than this are left out of the probability line


class ReadingLabel(QLabel):
    """The reading in bold, the likely families with their probability, the evidence underneath.

    After :meth:`set_reading`, ``headline`` is the reading's sentence, ``probabilities`` the families
    listed with their probability (most likely first) and ``evidence`` the evidence lines.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.RichText)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.headline = ""
        self.probabilities: list[tuple[str, float]] = []
        self.evidence: list[str] = []

    def set_reading(self, reading) -> None:
        """Show the ``Reading`` of ``damp_engine.read_raster``."""
        from damp_engine import FAMILY_TITLES

        likely = sorted(((FAMILY_TITLES[f], p) for f, p in reading.families.items() if p >= SHOWN_PROBABILITY),
                        key=lambda item: -item[1])
        self.show_reading(reading.sentence, reading.evidence, likely)

    def show_reading(self, headline: str, evidence: list[str],
                     probabilities: list[tuple[str, float]] | None = None) -> None:
        """Show ``headline``, then ``probabilities`` as (title, p) pairs, then the ``evidence`` lines."""
        self.headline = headline
        self.evidence = list(evidence)
        self.probabilities = list(probabilities or [])
        first = headline[:1].upper() + headline[1:]
        parts = [f"<b>{html.escape(first)}</b>"]
        if self.probabilities:
            line = " · ".join(f"{html.escape(title)} {100 * p:.0f} %" for title, p in self.probabilities)
            parts.append(f"<div style='color:gray'>Probability: {line}</div>")
        if self.evidence:
            items = "".join(f"<li>{html.escape(text)}</li>" for text in self.evidence)
            parts.append(f"<ul style='margin-left:-24px; color:gray'>{items}</ul>")
        self.setText("".join(parts))
        self.setToolTip("The reading of the degradation (damp_engine.reading): calibrated probabilities of "
                        "each family from the six prompt metrics and closed-form severity estimators; "
                        "the same reading as `damp prompt` and the Degradation prompt algorithm.")
