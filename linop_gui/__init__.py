"""LINOP Studio desktop application (PySide6 + pyqtgraph)."""
