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

A VinDr unit whose source cannot be read draws the next source from its own random stream (see
:mod:`linop_core.synthset.skips`): the skip is committed with the unit as an audit event and counted in
:class:`BatchRun` / :class:`SetResult`, so a damaged file neither stops the batch nor is passed over in
silence, and a resume meets the same draws.

Front doors: ``linop-export generate``, the GUI's batch dialog, ``linop-bench`` and the demo-model proof.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from linop_core.anatomy import placement_mask
from linop_core.dicom import DicomImage
from linop_core.engines import Engine
from linop_core.errors import DataError, DicomError, LinopError
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
from linop_core.synthset.reader import SynthSet, next_free
from linop_core.synthset.records import SynthSample
from linop_core.synthset.skips import (
    MAX_REDRAWS,
    SourceSkip,
    size_mismatch_event,
    skip_reason,
    skips_from_events,
    source_file,
)
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
    (a mass box sampled inside the breast); ``make_request`` then builds it from the image.

    ``skippable``: a source that cannot be read (DicomError) or cannot take the request (DataError) is
    skipped and recorded instead of failing the run; ``redraw(excluded_image_ids)`` then plans the same unit
    on another source (from the unit's own random stream), and without ``redraw`` the unit is committed
    empty. ``expected_size`` (height, width), e.g. from a VinDr CSV, is compared with the loaded image.
    """

    source: ImageSource
    request: SynthesisRequest | None = None
    make_request: Callable[[DicomImage | np.ndarray], SynthesisRequest] | None = field(default=None, repr=False)
    skippable: bool = False
    redraw: Callable[[frozenset[str]], UnitPlan] | None = field(default=None, repr=False)
    expected_size: tuple[int, int] | None = None

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
    sources: tuple[ImageSource, ...] = ()  # the pool units draw from (what --check-sources reads)

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


@dataclass(frozen=True)
class UnitOutcome:
    """A unit's samples, the sources it skipped, and the audit events to commit with it."""

    samples: list[SynthSample]
    skipped: tuple[SourceSkip, ...] = ()
    events: tuple[str, ...] = ()


def run_unit(job: BatchJob, unit: int) -> UnitOutcome:
    """Synthesise the candidates of one unit (deterministic in the job's seed and ``unit``)."""
    plan = job.plan(unit)
    skipped: list[SourceSkip] = []
    while True:
        try:
            image = plan.source.load()
            request = plan.request_for(image)
            break
        except (DicomError, DataError) as exc:
            if not plan.skippable:
                raise
            skipped.append(SourceSkip(unit, plan.source.info.image_id, source_file(plan.source), skip_reason(exc)))
            if plan.redraw is None:  # the unit stands for this very source: it is done, empty
                return UnitOutcome([], tuple(skipped), tuple(s.event() for s in skipped))
            if len(skipped) >= MAX_REDRAWS:
                raise DataError(
                    source_file(plan.source), f"unit {unit}: {len(skipped)} sources in a row could not be used "
                    f"(this one: {skipped[-1].reason}); check the pool with --check-sources"
                ) from exc
            plan = plan.redraw(frozenset(s.image_id for s in skipped))
    events = [s.event() for s in skipped]
    if isinstance(image, DicomImage) and plan.expected_size is not None:
        actual = (image.meta.rows, image.meta.columns)
        if actual != plan.expected_size:
            events.append(size_mismatch_event(unit, plan.source, plan.expected_size, actual))
            warnings.warn(f"{image.meta.path}: the CSV records {plan.expected_size[0]}x{plan.expected_size[1]} "
                          f"(height x width) but the file is {actual[0]}x{actual[1]}", stacklevel=2)
    candidates = synthesize(image, request, job.engine, anatomy_check=job.anatomy_check, image_name=plan.source.name)
    pixels = image.pixels if isinstance(image, DicomImage) else np.asarray(image)
    info = plan.source.info_with(image)
    samples = [
        SynthSample(index=unit * job.candidates + k, candidate=c, source_pixels=pixels, source=info)
        for k, c in enumerate(candidates)
    ]
    return UnitOutcome(samples, tuple(skipped), tuple(events))


class UnitSink(Protocol):
    """Where a run's samples go, unit by unit (a :class:`SynthSetWriter` is one)."""

    @property
    def done_units(self) -> frozenset[int]: ...

    def commit(self, unit: int, samples: Sequence[SynthSample], events: Sequence[str] = ()) -> None:
        """Store a unit's samples with its audit events (JSON lines, e.g. skipped sources), all or nothing."""
        ...


@dataclass
class SampleCollector:
    """A :class:`UnitSink` that keeps the samples in memory (small runs, tests, the proof)."""

    samples: dict[int, list[SynthSample]] = field(default_factory=dict)
    events: dict[int, list[str]] = field(default_factory=dict)

    @property
    def done_units(self) -> frozenset[int]:
        return frozenset(self.samples)

    def commit(self, unit: int, samples: Sequence[SynthSample], events: Sequence[str] = ()) -> None:
        self.samples[unit] = list(samples)
        if events:
            self.events[unit] = list(events)


@dataclass(frozen=True)
class BatchRun:
    """What :func:`run` did: units asked for, already done before (resumed), made now, whether it was
    cancelled before the end, and the sources the units made now skipped."""

    units: int
    resumed: int
    made: int
    cancelled: bool
    skipped: tuple[SourceSkip, ...] = ()


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
    skipped: list[SourceSkip] = []
    for unit in todo:
        if cancel is not None and cancel():
            return BatchRun(len(wanted), len(wanted) - len(todo), made, True, tuple(skipped))
        outcome = run_unit(job, unit)
        sink.commit(unit, outcome.samples, outcome.events)
        skipped += outcome.skipped
        made += 1
        if progress is not None:
            progress(made, len(todo))
    return BatchRun(len(wanted), len(wanted) - len(todo), made, False, tuple(skipped))


@dataclass(frozen=True)
class SetResult:
    """A finished (or cancelled) :func:`write_set`: the run, the manifest when the set was assembled, and every
    source the set's units skipped (read back from the set, so units of earlier, resumed runs count too)."""

    path: Path
    run: BatchRun
    manifest: dict[str, Any] | None
    skipped: tuple[SourceSkip, ...] = ()

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
        return SetResult(out_path, result, None, result.skipped)
    manifest = writer.finish(progress=finish_progress)
    with SynthSet(out_path) as finished:
        skipped = tuple(skips_from_events(finished.audit_events()))
    return SetResult(out_path, result, manifest, skipped)


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
        # where sampled boxes may go; a spool made with another rule must not be resumed by this one
        "mass_placement": None if mass_model is None else "breast without the pectoral muscle (MLO)",
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
        sources=tuple({r.image_id: DicomSource.from_record(r) for r in pool}.values()),
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
        # The draw order (source, seeds, then the box) is part of the job's identity: keep it. A source that
        # cannot be used is replaced by the next draw from the same stream (after the seeds and any box).
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
        return self._plan_for(record, rng, seeds, given)

    def _redraw(self, rng: np.random.Generator, seeds: tuple[int, ...], excluded: frozenset[str]) -> UnitPlan:
        if len(excluded) >= len({r.image_id for r in self.pool}):
            raise DataError(self.dataset.root, "no source in the pool can be read; check it with --check-sources")
        record = pick_source(rng, self.pool)
        while record.image_id in excluded:
            record = pick_source(rng, self.pool)
        return self._plan_for(record, rng, seeds, None)

    def _plan_for(
        self, record: ImageRecord, rng: np.random.Generator, seeds: tuple[int, ...], given: BoxRequest | None
    ) -> UnitPlan:
        source = DicomSource.from_record(record)
        size = (record.height, record.width) if record.height and record.width else None
        redraw = None if given is not None else (lambda excluded: self._redraw(rng, seeds, excluded))
        if self.task is Task.OUTPAINT:
            findings = [f for f in record.findings if f.box is not None]
            request = OutpaintRequest(
                boxes=tuple(f.box for f in findings if f.box is not None),
                box_labels=tuple(f.categories[0] for f in findings), seeds=seeds,
                global_labels=tuple(record.labels), **self.outpaint_options,
            )
            return UnitPlan(source, request, skippable=True, redraw=redraw, expected_size=size)
        if given is not None:
            request = InpaintRequest(box=given.box, seeds=seeds, category=given.label, **self.inpaint_options)
            return UnitPlan(source, request, skippable=True, expected_size=size)
        mass_model = self.mass_model
        assert mass_model is not None

        def sampled(image: DicomImage | np.ndarray) -> SynthesisRequest:
            assert isinstance(image, DicomImage)
            allowed = placement_mask(image.pixels, "breast", padding_mask=image.padding_mask, view=record.view,
                                     laterality=record.laterality)
            box = sample_mass_box(rng, mass_model, allowed, size_jitter=self.options.size_jitter,
                                  image_name=source.name)
            return InpaintRequest(box=box, seeds=seeds, category="Mass", **self.inpaint_options)

        return UnitPlan(source, make_request=sampled, skippable=True, redraw=redraw, expected_size=size)


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
