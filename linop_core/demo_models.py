"""Where the bundled demo checkpoints are: the default models of the GUI, ``linop-export`` and ``linop-bench``.

The demo models (mat-small variants trained on phantoms, see ``resources/models/*.TRAINED_WITH.md``) live in
the repository's ``resources/models/`` folder. An installed package may instead carry them as package data in
``linop_core/resources/models/``; both places are looked at, the package first.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from linop_core.vocab import Task

DEMO_MODEL_FILES: dict[Task, str] = {
    Task.INPAINT: "mammo-inpaint-demo.pt",
    Task.OUTPAINT: "cxr-outpaint-demo.pt",
}


def demo_model_dirs() -> list[Path]:
    """The folders searched for demo models, in order: package data, then the source tree's resources/models."""
    dirs: list[Path] = []
    try:
        packaged = resources.files("linop_core") / "resources" / "models"
        dirs.append(Path(str(packaged)))
    except (ModuleNotFoundError, TypeError):  # not importable as a regular package (zip import without files)
        pass
    dirs.append(Path(__file__).resolve().parent.parent / "resources" / "models")
    return dirs


def demo_model_path(task: Task | str) -> Path | None:
    """The bundled demo checkpoint for ``task`` ("inpaint": mammography masses, "outpaint": chest X-ray),
    or None when it is not installed.

    Raises:
        ValueError: ``task`` is not "inpaint" or "outpaint" (a programming error, not a user one).
    """
    try:
        name = DEMO_MODEL_FILES[task]
    except KeyError:
        raise ValueError(f"demo model task must be one of {', '.join(DEMO_MODEL_FILES)}, got {task!r}") from None
    for folder in demo_model_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
