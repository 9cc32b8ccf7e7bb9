"""Batch synthesis as a service: a job description, unit planning, resumable runs into a set or any sink.

A :class:`BatchJob` says what unit ``i`` synthesises (:meth:`BatchJob.plan`: a source and a
:class:`~linop_core.synthesis.SynthesisRequest`) and with which engine. Unit ``i`` makes samples
``i*K .. i*K+K-1`` (``K`` candidates) and depends only on the job's seed and ``i``, so shards, resumes and
appends agree. Jobs come from a VinDr root (:func:`vindr_job`: mass boxes sampled into the normal pool, or
read from a box CSV; CXR findings kept and outpainted around) or from explicit units (:func:`explicit_job`,
e.g. in-memory phantoms).

:func:`run` feeds the units' samples to a sink (anything with ``done_units`` and ``commit``: a
:class:`~linop_core.synthset.writer.SynthSetWriter`, or a collector); :func:`write_set` is the one place a
batch sets up a writer. Both report ``progress(done, total)`` per unit and stop between units when
``cancel()`` turns true; committed units stay committed, so running the same job again resumes.

Front doors: ``linop-export generate``, the GUI's batch dialog, ``linop-bench`` and the demo-model proof.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from linop_core.anatomy import breast_mask
from linop_core.dicom import DicomImage
from linop_core.engines import Engine
from linop_core.errors import DataError, LinopError
from linop_core.hashing import sha256_file, sha256_lines
from linop_core.progress import Progress
from linop_core.sources import DicomSource, ImageSource
from linop_core.synthesis import InpaintRequest, OutpaintRequest, SynthesisRequest, synthesize
from linop_core.synthset.plan import (
    BoxRequest,
    MassBoxModel,
    candidate_seeds,
    pick_source,
    read_box_csv,
    sample_mass_box,
    unit_rng,
)
from linop_core.synthset.reader import next_free
from linop_core.synthset.records import SynthSample
from linop_core.synthset.writer import SynthSetWriter
from linop_core.vindr import ALL_LABELS, LOCAL_LABELS, CxrDataset, ImageRecord, MammoDataset, open_dataset
from linop_core.vocab import HoleKind, Task

Cancel = Callable[[], bool]
UNREVIEWED_FILTER = "decision==pending (unreviewed batch export)"


@dataclass(frozen=True)
class BatchOptions:
    """How a VinDr batch samples and synthesises (the options of ``linop-export generate``).

    ``margin`` None keeps :class:`~linop_core.synthesis.OutpaintRequest`'s default; ``feather_px`` None the
    synthesis' automatic feather.
    """

    candidates: int = 1
    seed: int = 0
    split: str = "training"
    allow_test_sources: bool = False
    boxes_csv: Path | None = None
    size_jitter: float = 0.15
    hole: HoleKind = HoleKind.ELLIPSE
    context: float = 2.0
    feather_px: float | None = None
    margin: float | None = None
    anatomy_check: bool = True

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise LinopError("candidates per unit must be at least 1")


@dataclass(frozen=True)
class UnitPlan:
    """What one unit synthesises. ``request`` may be None when the request depends on the loaded pixels
    (a mass box sampled inside the breast); ``make_request`` then builds it from the image."""

    source: ImageSource
    request: SynthesisRequest | None = None
    make_request: Callable[[DicomImage | np.ndarray], SynthesisRequest] | None = field(default=None, repr=False)

    def request_for(self, image: DicomImage | np.ndarray) -> SynthesisRequest:
        if self.request is not None:
            return self.request
        assert self.make_request is not None
        return self.make_request(image)


@dataclass
class BatchJob:
    """A planned batch: which unit synthesises what, with which engine, and what identifies the job.

    ``config`` is written into the set and compared on resume (same job, same config). ``n_units`` is the
    number of units the job defines, or None when units are sampled without end (a VinDr normal pool).
    """

    task: Task
    engine: Engine
    candidates: int
    config: dict[str, Any]
    plan: Callable[[int], UnitPlan]
    n_units: int | None = None
    anatomy_check: bool = True
    box_label_names: tuple[str, ...] = ()
    global_label_names: tuple[str, ...] = ()
    allow_test_split: bool = False

    def units(self, n: int | None = None, *, start: int = 0, shard: tuple[int, int] = (0, 1)) -> list[int]:
        """Unit numbers ``start .. start+n-1`` (``n`` None: all the job defines) that belong to ``shard``
        (index, count): those with ``unit % count == index``."""
        index, count = shard
        if count < 1 or not 0 <= index < count:
            raise LinopError(f"shard {index}/{count}: need N >= 1 and 0 <= I < N")
        if n is None:
            if self.n_units is None:
                raise LinopError("give the number of units to synthesise (--n); this job samples without end")
            n = self.n_units - start
        if n < 1:
            raise LinopError("the number of units must be at least 1")
        if self.n_units is not None and start + n > self.n_units:
            raise LinopError(f"the job defines {self.n_units} unit(s); units {start}..{start + n - 1} asked for")
        return [u for u in range(start, start + n) if u % count == index]


def run_unit(job: BatchJob, unit: int) -> list[SynthSample]:
    """Synthesise the candidates of one unit (deterministic in the job's seed and ``unit``)."""
    plan = job.plan(unit)
    image = plan.source.load()
    request = plan.request_for(image)
    candidates = synthesize(image, request, job.engine, anatomy_check=job.anatomy_check, image_name=plan.source.name)
    pixels = image.pixels if isinstance(image, DicomImage) else np.asarray(image)
    info = plan.source.info_with(image)
    return [
        SynthSample(index=unit * job.candidates + k, candidate=c, source_pixels=pixels, source=info)
        for k, c in enumerate(candidates)
    ]


class UnitSink(Protocol):
    """Where a run's samples go, unit by unit (a :class:`SynthSetWriter` is one)."""

    @property
    def done_units(self) -> frozenset[int]: ...

    def commit(self, unit: int, samples: Sequence[SynthSample]) -> None: ...


@dataclass
class SampleCollector:
    """A :class:`UnitSink` that keeps the samples in memory (small runs, tests, the proof)."""

    samples: dict[int, list[SynthSample]] = field(default_factory=dict)

    @property
    def done_units(self) -> frozenset[int]:
        return frozenset(self.samples)

    def commit(self, unit: int, samples: Sequence[SynthSample]) -> None:
        self.samples[unit] = list(samples)


@dataclass(frozen=True)
class BatchRun:
    """What :func:`run` did: units asked for, already done before (resumed), made now, and whether it was
    cancelled before the end."""

    units: int
    resumed: int
    made: int
    cancelled: bool


def run(
    job: BatchJob,
    units: Iterable[int],
    sink: UnitSink,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> BatchRun:
    """Synthesise every unit of ``units`` the sink does not hold yet and commit it there."""
    wanted = list(units)
    todo = [u for u in wanted if u not in sink.done_units]
    made = 0
    for unit in todo:
        if cancel is not None and cancel():
            return BatchRun(len(wanted), len(wanted) - len(todo), made, True)
        sink.commit(unit, run_unit(job, unit))
        made += 1
        if progress is not None:
            progress(made, len(todo))
    return BatchRun(len(wanted), len(wanted) - len(todo), made, False)


@dataclass(frozen=True)
class SetResult:
    """A finished (or cancelled) :func:`write_set`: the run, and the manifest when the set was assembled."""

    path: Path
    run: BatchRun
    manifest: dict[str, Any] | None

    @property
    def n_samples(self) -> int:
        return int(self.manifest["n_samples"]) if self.manifest else 0


def write_set(
    job: BatchJob,
    out: str | os.PathLike[str],
    *,
    n: int | None = None,
    start: int | None = None,
    shard: tuple[int, int] = (0, 1),
    append: bool = False,
    gzip_level: int = 4,
    filter: str = UNREVIEWED_FILTER,
    progress: Progress | None = None,
    finish_progress: Progress | None = None,
    cancel: Cancel | None = None,
    resuming: Progress | None = None,
) -> SetResult:
    """Run ``job`` into the HDF5 set ``out`` (one file per shard), resumably, then assemble it.

    ``start`` None: unit 0, or the first unit after an existing set when ``append``. Shards of an append need
    the same explicit ``start``. A cancelled run leaves its committed units in ``OUT.parts/`` and no
    manifest; the same call resumes, and ``resuming(done, total)`` is told how many units were done before.
    """
    out_path = Path(out)
    if start is None:
        if append and shard[1] > 1:
            raise LinopError("appending with shards needs an explicit first unit (--start), the same for every shard")
        start = next_free(out_path)[0] if append else 0
    config = {**job.config, "start": start}
    if not out_path.parent.is_dir():
        out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = SynthSetWriter(
        out_path, config=config, filter=filter, allow_test_split=job.allow_test_split,
        box_label_names=job.box_label_names, global_label_names=job.global_label_names, append=append,
        gzip_level=gzip_level,
    )
    units = job.units(n, start=start, shard=shard)
    done = sum(1 for u in units if u in writer.done_units)
    if done and resuming is not None:
        resuming(done, len(units))
    result = run(job, units, writer, progress=progress, cancel=cancel)
    if result.cancelled:
        return SetResult(out_path, result, None)
    return SetResult(out_path, result, writer.finish(progress=finish_progress))


# ----------------------------------------------------------------------------------------------- VinDr jobs


def vindr_job(root: str | os.PathLike[str], options: BatchOptions, engine: Engine) -> BatchJob:
    """The batch of ``linop-export generate`` on a VinDr-Mammo (inpainting) or VinDr-CXR (outpainting) root."""
    dataset = open_dataset(root)
    if options.split == "test" and not options.allow_test_sources:
        raise DataError(root, "--split test would synthesise from evaluation images and leak them into training; "
                        "add --allow-test-sources if you really mean it")
    box_requests: list[BoxRequest] | None = None
    mass_model: MassBoxModel | None = None
    if isinstance(dataset, MammoDataset):
        task = Task.INPAINT
        if options.boxes_csv is not None:
            box_requests = read_box_csv(options.boxes_csv)
            pool = [dataset.by_id(r.image_id) for r in box_requests]
            _check_box_pool(options, pool)
        else:
            pool = sorted(dataset.normal_pool(options.split), key=lambda r: r.image_id)
            mass_model = MassBoxModel.from_boxes(dataset.mass_boxes("training"))
    elif isinstance(dataset, CxrDataset):
        task = Task.OUTPAINT
        if options.boxes_csv is not None:
            raise LinopError("--boxes is for VinDr-Mammo in-painting; CXR out-painting keeps the real findings")
        pool = sorted((r for r in dataset.split(options.split) if any(f.box is not None for f in r.findings)),
                      key=lambda r: r.image_id)
    else:  # pragma: no cover - open_dataset returns one of the two
        raise DataError(root, "not a VinDr-Mammo or VinDr-CXR root")
    pool = [r for r in pool if r.exists]
    if not pool:
        what = "normal (BI-RADS 1) images" if task is Task.INPAINT else "abnormal images with boxes"
        raise DataError(root, f"no {what} with a DICOM file in split {options.split!r}; check the root and --split")

    inpaint_options: dict[str, Any] = {"hole": str(options.hole), "context": options.context,
                                       "feather_px": options.feather_px}
    outpaint_options: dict[str, Any] = {"feather_px": options.feather_px}
    if options.margin is not None:
        outpaint_options["margin"] = options.margin
    provenance = engine.provenance()
    config: dict[str, Any] = {
        "dataset": "mammo" if task is Task.INPAINT else "cxr",
        "pool_size": len(pool),
        "pool_sha256": sha256_lines([r.image_id for r in pool]),
        "split": options.split,
        "boxes_csv_sha256": sha256_file(options.boxes_csv) if options.boxes_csv is not None else None,
        "engine": provenance.get("engine"),
        "checkpoint_sha256": provenance.get("checkpoint_sha256"),
        "engine_resolution": getattr(engine, "resolution", None),
        "seed": options.seed,
        "candidates": options.candidates,
        "size_jitter": options.size_jitter,
        "inpaint": inpaint_options if task is Task.INPAINT else None,
        "outpaint": outpaint_options if task is Task.OUTPAINT else None,
        "mass_box_source": None if mass_model is None else ("fallback" if mass_model.is_fallback else "training"),
        "mass_box_count": None if mass_model is None else len(mass_model.boxes),
        "anatomy_check": options.anatomy_check,
    }
    planner = _VindrPlanner(task, dataset, pool, options, box_requests, mass_model, inpaint_options,
                            outpaint_options)
    return BatchJob(
        task=task, engine=engine, candidates=options.candidates, config=config, plan=planner.plan,
        n_units=None if box_requests is None else len(box_requests), anatomy_check=options.anatomy_check,
        box_label_names=("Mass",) if task is Task.INPAINT else LOCAL_LABELS,
        global_label_names=() if task is Task.INPAINT else ALL_LABELS,
        allow_test_split=options.allow_test_sources,
    )


def _check_box_pool(options: BatchOptions, pool: Sequence[ImageRecord]) -> None:
    absent = [r.image_id for r in pool if not r.exists]
    if absent:
        raise DataError(options.boxes_csv or "", f"{len(absent)} image(s) have no DICOM file under the root "
                        f"(first: {absent[0]})")
    tests = sorted({r.image_id for r in pool if r.split == "test"})
    if tests and not options.allow_test_sources:
        raise DataError(options.boxes_csv or "", f"{len(tests)} image(s) are from the test split (first: {tests[0]}); "
                        "synthesising from evaluation images leaks them into training; remove them or add "
                        "--allow-test-sources")


@dataclass(frozen=True)
class _VindrPlanner:
    task: Task
    dataset: MammoDataset | CxrDataset
    pool: list[ImageRecord]
    options: BatchOptions
    box_requests: list[BoxRequest] | None
    mass_model: MassBoxModel | None
    inpaint_options: dict[str, Any]
    outpaint_options: dict[str, Any]

    def plan(self, unit: int) -> UnitPlan:
        # The draw order (source, seeds, then the box) is part of the job's identity: keep it.
        rng = unit_rng(self.options.seed, unit)
        if self.box_requests is not None:
            if not 0 <= unit < len(self.box_requests):
                raise LinopError(f"unit {unit} is not a row of the box CSV ({len(self.box_requests)} rows)")
            given = self.box_requests[unit]
            record = self.dataset.by_id(given.image_id)
        else:
            given = None
            record = pick_source(rng, self.pool)
        seeds = candidate_seeds(rng, self.options.candidates)
        source = DicomSource.from_record(record)
        if self.task is Task.OUTPAINT:
            findings = [f for f in record.findings if f.box is not None]
            request = OutpaintRequest(
                boxes=tuple(f.box for f in findings if f.box is not None),
                box_labels=tuple(f.categories[0] for f in findings), seeds=seeds,
                global_labels=tuple(record.labels), **self.outpaint_options,
            )
            return UnitPlan(source, request)
        if given is not None:
            return UnitPlan(source, InpaintRequest(box=given.box, seeds=seeds, category=given.label,
                                                   **self.inpaint_options))
        mass_model = self.mass_model
        assert mass_model is not None

        def sampled(image: DicomImage | np.ndarray) -> SynthesisRequest:
            assert isinstance(image, DicomImage)
            breast = breast_mask(image.pixels, padding_mask=image.padding_mask)
            box = sample_mass_box(rng, mass_model, breast, size_jitter=self.options.size_jitter,
                                  image_name=source.name)
            return InpaintRequest(box=box, seeds=seeds, category="Mass", **self.inpaint_options)

        return UnitPlan(source, make_request=sampled)


# ----------------------------------------------------------------------------------------------- explicit jobs


def explicit_job(
    units: Sequence[UnitPlan],
    engine: Engine,
    *,
    candidates: int,
    config: dict[str, Any],
    anatomy_check: bool = True,
    allow_test_split: bool = False,
) -> BatchJob:
    """A job over given units (unit ``i`` is ``units[i]``), e.g. in-memory phantoms with known boxes.

    Every unit's request must carry ``candidates`` seeds.
    """
    if not units:
        raise LinopError("an explicit batch needs at least one unit")
    tasks = {type(u.request).task for u in units if u.request is not None}
    if len(tasks) != 1 or any(u.request is None for u in units):
        raise LinopError("every unit of an explicit batch needs a request, all of one task")
    for i, u in enumerate(units):
        assert u.request is not None
        if len(u.request.seeds) != candidates:
            raise LinopError(f"unit {i} has {len(u.request.seeds)} seed(s); the job makes {candidates} per unit")
    return BatchJob(task=tasks.pop(), engine=engine, candidates=candidates, config=config,
                    plan=lambda unit: units[unit], n_units=len(units), anatomy_check=anatomy_check,
                    allow_test_split=allow_test_split)
