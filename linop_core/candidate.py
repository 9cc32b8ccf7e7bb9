"""A generated candidate: one synthetic image and everything needed to reproduce and audit it.

A :class:`Candidate` leaves the synthesis with its pixels in memory. Front doors that keep candidates on disk
(the review session's ``.npz`` files) store the pixels apart and the rest as a JSON-able record:
:meth:`Candidate.to_record` and :meth:`Candidate.from_record` are that round trip, defined here once so the
session, the exporter and the batch service agree on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linop_core.dicom import VoiWindow
from linop_core.errors import DataError
from linop_core.masks import Box
from linop_core.vocab import HoleKind, Task

RECORD_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One synthetic image and its provenance.

    The first 16 fields are the contract with the SynthSet writer; the ones after ``checkpoint_sha256`` are
    extra provenance with defaults.
    """

    task: Task
    # (H, W) full source size, same dtype as the source pixels, native units, MONOCHROME2.
    image: np.ndarray = field(compare=False, repr=False)
    # (H, W) float32 in [0, 1]: the blend weight used (0 = source pixel kept bit-exact). May be shared
    # (read-only) by the candidates of one request.
    generated: np.ndarray = field(compare=False, repr=False)
    boxes: tuple[Box, ...]  # inpaint: the new lesion box; outpaint: the kept lesion boxes (without margin)
    box_labels: tuple[str, ...]
    global_labels: tuple[str, ...]
    seed: int
    crop_origin: tuple[int, int]  # (y0, x0) of the model window in source pixels
    crop_size: tuple[int, int]  # (h, w) of the model window in source pixels
    scale: float  # model pixels per source pixel
    feather_px: float  # feather width in source pixels
    window: VoiWindow  # native -> [0, 1] for the model
    window_function: str
    engine: str  # "mat" | "biharmonic"
    model_name: str | None
    checkpoint_sha256: str | None
    # --- extra provenance
    seed_used: bool = True  # False when the engine ignores seeds (biharmonic): candidates are then identical
    hole_kind: HoleKind | None = None  # None only for candidates recorded before hole kinds were kept
    margin_px: float = 0.0  # outpaint: pixels kept around each box; inpaint: 0
    model_size: tuple[int, int] = (0, 0)  # (h, w) the engine ran at, padding included
    source_id: str | None = None  # SOP Instance UID (DICOM input) or the caller's image name
    engine_settings: dict[str, object] = field(default_factory=dict, compare=False)

    def to_record(self) -> dict[str, Any]:
        """Every field but the two pixel arrays, as plain JSON types (see :meth:`from_record`)."""
        window = self.window
        return {
            "record_version": RECORD_VERSION,
            "task": str(self.task),
            "boxes": [[float(v) for v in box] for box in self.boxes],
            "box_labels": [str(v) for v in self.box_labels],
            "global_labels": [str(v) for v in self.global_labels],
            "seed": int(self.seed),
            "crop_origin": [int(v) for v in self.crop_origin],
            "crop_size": [int(v) for v in self.crop_size],
            "scale": float(self.scale),
            "feather_px": float(self.feather_px),
            "window": {"center": float(window.center), "width": float(window.width),
                       "explanation": window.explanation},
            "window_function": str(self.window_function),
            "engine": str(self.engine),
            "model_name": self.model_name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "seed_used": bool(self.seed_used),
            "hole_kind": None if self.hole_kind is None else str(self.hole_kind),
            "margin_px": float(self.margin_px),
            "model_size": [int(v) for v in self.model_size],
            "source_id": self.source_id,
            "engine_settings": json.loads(json.dumps(self.engine_settings, default=str)),
        }

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], image: np.ndarray, generated: np.ndarray, *, where: str = "candidate"
    ) -> Candidate:
        """The candidate :meth:`to_record` described, with its pixels. ``where`` names the record's file in
        the :class:`DataError` raised for a record that lacks a field or holds a wrong value.

        Records written by earlier versions (no ``record_version``: hole kind "" for unknown, and seed,
        engine and checkpoint kept beside the record) are read too, given those fields in ``record``.
        """
        try:
            window = record["window"]
            hole = record.get("hole_kind") or None
            return cls(
                task=Task(record["task"]), image=image, generated=generated.astype(np.float32, copy=False),
                boxes=tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in record["boxes"]),
                box_labels=tuple(str(v) for v in record["box_labels"]),
                global_labels=tuple(str(v) for v in record["global_labels"]), seed=int(record["seed"]),
                crop_origin=(int(record["crop_origin"][0]), int(record["crop_origin"][1])),
                crop_size=(int(record["crop_size"][0]), int(record["crop_size"][1])),
                scale=float(record["scale"]), feather_px=float(record["feather_px"]),
                window=VoiWindow(float(window["center"]), float(window["width"]), window.get("explanation")),
                window_function=str(record["window_function"]), engine=str(record["engine"]),
                model_name=record.get("model_name"), checkpoint_sha256=record.get("checkpoint_sha256"),
                seed_used=bool(record.get("seed_used", True)), hole_kind=None if hole is None else HoleKind(hole),
                margin_px=float(record.get("margin_px", 0.0)),
                model_size=tuple(int(v) for v in record.get("model_size", (0, 0))),  # type: ignore[arg-type]
                source_id=record.get("source_id"), engine_settings=dict(record.get("engine_settings", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(where, f"candidate record is incomplete or damaged ({type(exc).__name__}: {exc}); "
                            "generate the candidate again") from exc
