"""The top of the dock: which model runs where, and what part of the layer is inspected."""
from __future__ import annotations

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QWidget

LAYER, EXTENT = "layer", "extent"


class ModelHeader(QLabel):
    """One line naming the model and the device it runs on ("CPU" or "CUDA: <GPU name>")."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.set_model("—", "—")

    def set_model(self, model: str, device: str) -> None:
        """Show the model's name and the device."""
        self.setText(f"Model <b>{model}</b> · Device <b>{device}</b>")
        self.setToolTip("The DAMP model that inspects the layer, and where it runs. A CUDA GPU is "
                        "used when PyTorch sees one.")


class ScopeSwitch(QWidget):
    """Whole layer (sampled) or visible extent; emits ``changed(scope)`` with ``LAYER`` or ``EXTENT``."""

    changed = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._buttons = {
            LAYER: QRadioButton("Whole layer"),
            EXTENT: QRadioButton("Visible extent"),
        }
        self._buttons[LAYER].setToolTip("Read the whole layer at full resolution: small layers entirely, "
                                        "large ones sampled as 4 windows spread over it.")
        self._buttons[EXTENT].setToolTip("Read the part of the layer shown in the map; updates when the "
                                         "map stops moving.")
        self._buttons[LAYER].setChecked(True)
        group = QButtonGroup(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for button in self._buttons.values():
            group.addButton(button)
            layout.addWidget(button)
            button.toggled.connect(self._on_toggled)
        layout.addStretch(1)

    @property
    def scope(self) -> str:
        """``LAYER`` or ``EXTENT``."""
        return EXTENT if self._buttons[EXTENT].isChecked() else LAYER

    def set_scope(self, scope: str) -> None:
        """Select ``LAYER`` or ``EXTENT`` (emits ``changed`` if it changes)."""
        self._buttons[scope].setChecked(True)

    def _on_toggled(self, checked: bool) -> None:
        if checked:
            self.changed.emit(self.scope)
