"""LINOP core: DICOM and VinDr I/O, phantoms, masks, the MAT model, synthesis and export. No Qt here."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linop")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
