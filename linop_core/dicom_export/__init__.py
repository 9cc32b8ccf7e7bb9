"""DICOM out: a synthetic set as Secondary Capture images + binary Segmentations of the generated region.

:func:`export_dicom` is the service the CLI (``linop-export dicom``) and the GUI call; see
docs/dicom-export.md for the attributes written.
"""

from linop_core.dicom_export.export import IMAGE_DIR, SEG_DIR, DicomExport, export_dicom
from linop_core.dicom_export.image import ImageIds, synthetic_image
from linop_core.dicom_export.run import STATE_FILE, ExportRun
from linop_core.dicom_export.seg import generated_region_seg

__all__ = [
    "IMAGE_DIR",
    "SEG_DIR",
    "STATE_FILE",
    "DicomExport",
    "ExportRun",
    "ImageIds",
    "export_dicom",
    "generated_region_seg",
    "synthetic_image",
]
