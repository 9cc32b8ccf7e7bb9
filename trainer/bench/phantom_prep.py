"""The phantom presets' data: a phantom VinDr root and its synthetic set(s), made once under ``OUT/data``.

Synthetic sources (``phantom.sources``):

- ``mat``: the bundled demo MAT model of the task through the batch service (the biharmonic engine when the
  project bundles no model);
- ``biharmonic``: the same batch job with the biharmonic engine: the same images and boxes, a smooth fill
  with no learned texture;
- ``copy-paste``: the same job's units with real lesions pasted instead (:mod:`trainer.bench.copypaste_set`),
  donors drawn from the benchmark's training split.

Every set is made with the data seed ``phantom.seed``, so unit ``i`` of each set starts from the same image
and box. Files are kept and reused on reruns (and a half-written set resumes).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from linop_core.demo_models import demo_model_path
from linop_core.errors import LinopError
from linop_core.precision import dtype_name
from linop_core.progress import tqdm_progress
from linop_core.vocab import Task

MAT, BIHARMONIC, COPY_PASTE = "mat", "biharmonic", "copy-paste"


def _make_root(config: Any, root: Path, modality: str, progress: bool) -> None:
    from linop_core.phantom import make_cxr_dataset, make_mammo_dataset

    settings = config.phantom
    marker = root / ("breast-level_annotations.csv" if modality == "mammo" else "annotations/image_labels_test.csv")
    if not marker.is_file():
        make = make_mammo_dataset if modality == "mammo" else make_cxr_dataset
        make(root, settings.n, settings.seed, progress=tqdm_progress(desc=f"phantom {modality}", enabled=progress))


def _real_data(config: Any) -> Any:
    """The benchmark's real splits (no synthetic set): who may donate lesions, which studies are held out."""
    from trainer.bench.data import classification_data, detection_data

    settings = copy.deepcopy(config.data)
    settings.synthetic, settings.synthetic_sets = None, None
    return detection_data(settings) if config.task == "detect" else classification_data(settings)


def _copy_paste_donors(config: Any, task: Task, split: str) -> Any:
    from trainer.bench.copypaste_set import donors_for

    data = _real_data(config)
    if task is Task.INPAINT:
        return donors_for(data.train.records, data.held_out_studies, task, split=split)
    records = [record for record, _ in data.train.items]
    normals = frozenset(record.image_id for record, label in data.train.items if label == 0)
    return donors_for(records, data.held_out_studies, task, split=split, normal_ids=normals)


def prepare_phantom(config: Any, out: Path, progress: bool, *, precision: str = "auto") -> dict[str, Any]:
    """Make the phantom root and its synthetic set(s) under ``out/data`` and point ``config.data`` at them.

    ``precision`` is the MAT engine's (``auto``, ``fp32``, ``bf16``, ``fp16``); a set already on disk from an
    earlier run is reused only when it was made at the same dtype. Returns facts for the report (which engine
    made each set and why).
    """
    from linop_core.engines import EngineSpec, make_engine
    from linop_core.synthset.batch import BatchOptions, vindr_job, write_set

    settings = config.phantom
    modality = "mammo" if config.task == "detect" else "cxr"
    root = out / "data" / modality
    _make_root(config, root, modality, progress)
    config.data.root = str(root)
    if config.data.cache_dir is None:
        config.data.cache_dir = str(out / "cache")
    task = Task.INPAINT if modality == "mammo" else Task.OUTPAINT
    model = demo_model_path(task)
    options = BatchOptions(seed=settings.seed)
    single = len(settings.sources) == 1
    paths: dict[str, str] = {}
    facts: dict[str, Any] = {"phantom_data": f"{modality}, n={settings.n}, seed={settings.seed}"}
    for source in settings.sources:
        name = "" if single else f"-{source}"
        path = out / "data" / f"{modality}-{task}{name}-{settings.synth_units}units-seed{settings.seed}.h5"
        bar = tqdm_progress(unit="image", desc=f"{source} set", enabled=progress)
        if source == COPY_PASTE:
            from trainer.bench.copypaste_set import write_copy_paste_set

            # The biharmonic engine only makes the job's unit plans here (sources, boxes); nothing is synthesised.
            job = vindr_job(root, options, make_engine(EngineSpec.biharmonic(settings.engine_resolution)))
            donors = _copy_paste_donors(config, task, options.split)
            made = write_copy_paste_set(job, path, n=settings.synth_units, seed=settings.seed, donors=donors,
                                        progress=bar)  # fmt: skip
            facts["synthesis_copy_paste"] = (
                f"copy-paste of real {'masses' if task is Task.INPAINT else 'findings'} "
                f"({len(donors.mass_boxes) or len(donors.normal_images)} "
                f"{'Mass boxes' if task is Task.INPAINT else 'normal target images'} of the benchmark's training "
                f"split), {made.written} samples, {made.skipped_held_out} units skipped (held-out source)"
            )
        else:
            use_mat = source == MAT and model is not None
            spec = (EngineSpec(task=task, precision=precision) if use_mat
                    else EngineSpec.biharmonic(settings.engine_resolution))  # fmt: skip
            dtype = dtype_name(spec.dtype())
            if path.is_file():  # kept from an earlier run: no model to load, only its precision to check
                _check_set_dtype(path, dtype)
            else:
                write_set(vindr_job(root, options, make_engine(spec)), path, n=settings.synth_units, progress=bar)
            if source == MAT:
                why = (f"bundled demo MAT model {model.name} in {dtype} (--precision {precision})" if model
                       else "biharmonic engine: the project bundles no demo MAT model yet (resources/models/ is "
                       "empty)")  # fmt: skip
            else:
                why = f"biharmonic engine at {settings.engine_resolution} px (same units, no learned texture)"
            facts["synthesis" if single else f"synthesis_{source}"] = why
        paths[source] = str(path)
    if single:
        config.data.synthetic = next(iter(paths.values()))
    else:
        config.data.synthetic_sets = paths
    return facts


def _check_set_dtype(path: Path, dtype: str) -> None:
    """Refuse to reuse a synthetic set made at another precision than the one asked for now ("": none asked)."""
    if not dtype:
        return
    from linop_core.synthset.reader import load_header

    _, table = load_header(path)
    recorded = {json.loads(text or "{}").get("dtype") for text in table.get("engine_settings", [])} - {None}
    if recorded and recorded != {dtype}:
        raise LinopError(f"{path}: this synthetic set was made in {', '.join(sorted(map(str, recorded)))}, not "
                         f"{dtype}; delete it (or give another --out) to make it again at this precision")
