"""The plugin object QGIS loads: registers the DAMP Processing provider and, in the desktop, the dock."""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt

from .provider import DampProvider


class DampPlugin:
    """Owns the provider (QGIS drops the algorithms of a provider nobody references) and the dock."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: DampProvider | None = None
        self.dock = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Register the provider; called by qgis_process and by :meth:`initGui`."""
        if self.provider is not None:
            return
        provider = DampProvider()
        if QgsApplication.processingRegistry().addProvider(provider):  # False: "damp" is taken already
            # The example models find their steps (damp:simulate, ...) through the registry, which
            # knows the provider only once it is added: load them again now.
            provider.refreshAlgorithms()
            self.provider = provider

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        """Register the provider and add the DAMP dock to the main window."""
        self.initProcessing()
        if self.iface is None:
            return
        try:
            from .dock import DampDock
        except ImportError as exc:
            QgsApplication.messageLog().logMessage(f"DAMP dock not available: {exc}", "DAMP")
            return
        self.dock = DampDock(self.iface)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)

    def unload(self) -> None:
        """Remove the dock and the provider."""
        if self.dock is not None:
            self.dock.unload()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
