"""One DICOM export into one folder: its state file, and the UIDs it gives every study, series and instance.

UIDs are ``2.25.<UUID>`` (PS3.5 B.2) with a name-based UUID (uuid5) under the run's random id, so a resumed
export gives a sample the same UIDs it had before the interruption, while two exports (two folders, two runs)
never share one. The state file ``linop-dicom-export.json`` keeps the run id and which set it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linop_core.errors import DataError
from linop_core.fileio import atomic_write_text

STATE_FILE = "linop-dicom-export.json"
STATE_SCHEMA = "linop-dicom-export"
STATE_VERSION = 1


@dataclass(frozen=True)
class ExportRun:
    """The identity of one export folder; everything derived from it is deterministic."""

    run_id: str  # uuid4, hex
    set_export_id: str
    created_utc: str  # ISO 8601, seconds

    def uid(self, *parts: object) -> str:
        return f"2.25.{uuid.uuid5(uuid.UUID(self.run_id), '/'.join(str(p) for p in parts)).int}"

    def study_uid(self, source_study_id: str) -> str:
        return self.uid("study", source_study_id)

    def series_uid(self, kind: str, source_study_id: str) -> str:
        return self.uid("series", kind, source_study_id)

    def instance_uid(self, kind: str, index: int) -> str:
        return self.uid("instance", kind, int(index))

    def frame_of_reference_uid(self, index: int) -> str:
        return self.uid("frame-of-reference", int(index))

    def pseudo_patient_id(self, source_study_id: str) -> str:
        """A patient id for the synthetic study: a digest of the set and the (already pseudonymous) source study
        id, the same in every export of the set, and never a source attribute."""
        digest = hashlib.sha256(f"{self.set_export_id}/{source_study_id}".encode()).hexdigest()
        return f"LINOP-SYNTH-{digest[:12].upper()}"

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_utc)


def state_path(out_dir: Path) -> Path:
    return out_dir / STATE_FILE


def open_run(out_dir: Path, set_export_id: str, set_name: str) -> tuple[ExportRun, bool]:
    """The run of ``out_dir``: the one recorded there (resumed: True), or a new one recorded now."""
    path = state_path(out_dir)
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            run = ExportRun(state["run_id"], state["set_export_id"], state["created_utc"])
            uuid.UUID(run.run_id)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(path, f"unreadable export state ({exc}); delete it to export here anew") from exc
        if state.get("schema") != STATE_SCHEMA:
            raise DataError(path, f"not a LINOP DICOM export state (schema {state.get('schema')!r})")
        if run.set_export_id != set_export_id:
            raise DataError(
                out_dir,
                f"holds the DICOM export of another set (export id {run.set_export_id}, not {set_export_id}); "
                "choose an empty folder",
            )
        return run, True
    out_dir.mkdir(parents=True, exist_ok=True)
    run = ExportRun(uuid.uuid4().hex, set_export_id, datetime.now(UTC).isoformat(timespec="seconds"))
    write_state(out_dir, run, {"set_file": set_name})
    return run, False


def write_state(out_dir: Path, run: ExportRun, extra: dict[str, Any]) -> None:
    from linop_core import __version__

    state = {"schema": STATE_SCHEMA, "version": STATE_VERSION, **asdict(run), "app_version": __version__, **extra}
    atomic_write_text(state_path(out_dir), json.dumps(state, indent=2, sort_keys=True) + "\n")
