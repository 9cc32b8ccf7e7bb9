"""The batch synthesis service (linop_core.synthset.batch): units planned from the job's seed alone, cancel and
resume, shards that merge into the unsharded set, and jobs over explicit in-memory units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from linop_core.engines import BiharmonicEngine
from linop_core.errors import LinopError
from linop_core.sources import ArraySource, SourceInfo
from linop_core.synthesis import InpaintRequest
from linop_core.synthset import SynthSet, merge_sets, spool_path
from linop_core.synthset.batch import (
    BatchOptions,
    SampleCollector,
    UnitPlan,
    explicit_job,
    run,
    vindr_job,
    write_set,
)

ENGINE = BiharmonicEngine(64)


def _job(root: Path, seed: int = 5):
    return vindr_job(root, BatchOptions(candidates=2, seed=seed), ENGINE)


def _images(path: Path) -> dict[int, np.ndarray]:
    with SynthSet(path) as synth:
        return {int(i): synth.image(row) for row, i in enumerate(synth.meta["index"].tolist())}


def test_a_unit_is_the_same_whenever_and_wherever_it_runs(mammo_root: Path) -> None:
    job = _job(mammo_root)
    alone, together = SampleCollector(), SampleCollector()
    run(job, [3], alone)
    run(_job(mammo_root), [1, 2, 3], together)
    first, second = alone.samples[3], together.samples[3]
    assert [s.index for s in first] == [6, 7]
    assert [s.candidate.seed for s in first] == [s.candidate.seed for s in second]
    assert all(np.array_equal(a.candidate.image, b.candidate.image) for a, b in zip(first, second, strict=True))
    assert first[0].candidate.boxes == second[0].candidate.boxes


def test_a_cancelled_run_keeps_its_units_and_the_same_call_resumes(mammo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "set.h5"
    calls = iter([False, False, True])  # let two units through, then cancel
    cancelled = write_set(_job(mammo_root), out, n=4, cancel=lambda: next(calls))
    assert cancelled.run.cancelled and cancelled.run.made == 2 and cancelled.manifest is None
    assert not out.exists() and len(list(spool_path(out).glob("unit_*.h5"))) == 2

    told: list[tuple[int, int]] = []
    resumed = write_set(_job(mammo_root), out, n=4, resuming=lambda done, total: told.append((done, total)))
    assert told == [(2, 4)] and resumed.run.resumed == 2 and resumed.run.made == 2 and not resumed.run.cancelled
    assert resumed.n_samples == 8 and not spool_path(out).exists()

    whole = write_set(_job(mammo_root), tmp_path / "whole.h5", n=4)
    assert whole.n_samples == 8
    got, expected = _images(out), _images(tmp_path / "whole.h5")
    assert got.keys() == expected.keys() and all(np.array_equal(got[i], expected[i]) for i in got)


def test_shards_merge_into_the_unsharded_set(mammo_root: Path, tmp_path: Path) -> None:
    parts = [tmp_path / f"part{i}.h5" for i in range(2)]
    for i, part in enumerate(parts):
        result = write_set(_job(mammo_root), part, n=4, shard=(i, 2))
        assert result.run.units == 2
    merge_sets(tmp_path / "merged.h5", parts)
    write_set(_job(mammo_root), tmp_path / "whole.h5", n=4)
    merged, whole = _images(tmp_path / "merged.h5"), _images(tmp_path / "whole.h5")
    assert sorted(merged) == list(range(8)) and all(np.array_equal(merged[i], whole[i]) for i in merged)


def test_a_resume_with_other_options_is_refused(mammo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "set.h5"
    write_set(_job(mammo_root), out, n=3, cancel=iter([False, True]).__next__)
    with pytest.raises(LinopError, match="interrupted export with other config"):
        write_set(_job(mammo_root, seed=6), out, n=3)


def test_explicit_units_run_on_in_memory_images() -> None:
    pixels = np.random.default_rng(0).integers(500, 3000, (160, 140)).astype(np.uint16)
    units = [UnitPlan(ArraySource(pixels, SourceInfo("phantom", f"p{i}", "s", "training")),
                      InpaintRequest(box=(40.0 + 10 * i, 50.0, 80.0 + 10 * i, 90.0), seeds=(i, i + 10)))
             for i in range(3)]
    job = explicit_job(units, ENGINE, candidates=2, config={"test": "explicit"}, anatomy_check=False)
    assert job.units() == [0, 1, 2]
    sink = SampleCollector()
    done = run(job, job.units(), sink)
    assert done.made == 3 and [s.index for s in sink.samples[2]] == [4, 5]
    assert sink.samples[1][0].candidate.boxes == ((50.0, 50.0, 90.0, 90.0),)
    with pytest.raises(LinopError, match="2 seed"):
        explicit_job(units, ENGINE, candidates=3, config={})
    with pytest.raises(LinopError, match="defines 3 unit"):
        job.units(4)
