"""The plain-language reading of the degradation prompt, with its evidence."""
from __future__ import annotations

import html

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel, QWidget


class ReadingLabel(QLabel):
    """The engine's one-line reading in bold, the evidence for it as a short list underneath."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.RichText)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.headline = ""

    def show_reading(self, headline: str, evidence: list[str]) -> None:
        """Show ``headline`` and the ``evidence`` lines."""
        self.headline = headline
        items = "".join(f"<li>{html.escape(line)}</li>" for line in evidence)
        first = headline[:1].upper() + headline[1:]
        self.setText(f"<b>{html.escape(first)}</b>"
                     + (f"<ul style='margin-left:-24px; color:gray'>{items}</ul>" if items else ""))
