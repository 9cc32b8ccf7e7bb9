"""The benchmark grid runner resumes without recomputing, splits cells over ranks, and its config is strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linop_core.errors import LinopError
from trainer.bench import grid
from trainer.bench.config import ConfigError, apply_overrides, from_dict, load_config
from trainer.bench.data import cell_training_indices


def _counting_cell(calls: list[str]) -> Any:
    def run_cell(cell: grid.Cell, progress: Any) -> dict[str, Any]:
        calls.append(cell.key)
        return {"metrics": {"value": cell.portion + cell.seed}}

    return run_cell


def test_resumed_grid_does_not_recompute_finished_cells(tmp_path: Path) -> None:
    cells = grid.grid_cells([1.0, 0.5], [0.0, "all"], [0, 1])
    assert len(cells) == 8 and len({c.key for c in cells}) == 8
    calls: list[str] = []
    computed = grid.run_grid(cells, _counting_cell(calls), tmp_path, "digest-a")
    assert len(calls) == 8 and computed == cells
    finished = {p.name for p in (tmp_path / "cells").iterdir()}
    assert finished == {f"{c.key}.json" for c in cells}

    calls.clear()
    assert grid.run_grid(cells, _counting_cell(calls), tmp_path, "digest-a") == []
    assert calls == []

    # A lost cell (e.g. killed mid-run: its file never appeared) is the only one run again.
    grid.cell_path(tmp_path, cells[3]).unlink()
    grid.run_grid(cells, _counting_cell(calls), tmp_path, "digest-a")
    assert calls == [cells[3].key]

    # Growing the grid (a third seed) runs only the new cells.
    calls.clear()
    bigger = grid.grid_cells([1.0, 0.5], [0.0, "all"], [0, 1, 2])
    grid.run_grid(bigger, _counting_cell(calls), tmp_path, "digest-a")
    assert sorted(calls) == sorted(c.key for c in bigger if c.seed == 2)

    records = grid.collect(tmp_path, bigger, "digest-a")
    assert [r["key"] for r in records] == [c.key for c in bigger]
    assert records[0]["result"]["metrics"]["value"] == bigger[0].portion + bigger[0].seed


def test_cells_from_another_config_are_refused(tmp_path: Path) -> None:
    cells = grid.grid_cells([1.0], [0.0], [0])
    grid.run_grid(cells, _counting_cell([]), tmp_path, "digest-a")
    with pytest.raises(LinopError, match="different benchmark config"):
        grid.run_grid(cells, _counting_cell([]), tmp_path, "digest-b")


def test_ranks_share_the_cells_without_overlap(tmp_path: Path) -> None:
    cells = grid.grid_cells([1.0, 0.5, 0.25], [0.0, 1.0], [0])
    seen: list[list[str]] = [[], []]
    for rank in (0, 1):
        grid.run_grid(cells, _counting_cell(seen[rank]), tmp_path, "d", rank=rank, world=2)
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(c.key for c in cells)
    record = json.loads(grid.cell_path(tmp_path, cells[0]).read_text())
    assert record["cell"] == {"portion": 1.0, "synthetic": 0.0, "seed": 0} and record["config_sha256"] == "d"


def test_training_indices_are_nested_and_sized_by_share() -> None:
    small, syn_small = cell_training_indices(80, 50, 0.25, 0.5, seed=3)
    full, syn_full = cell_training_indices(80, 50, 1.0, 0.5, seed=3)
    assert len(small) == 20 and set(small) <= set(full) and len(full) == 80
    assert len(syn_small) == 10 and set(syn_small) <= set(syn_full) and len(syn_full) == 40
    assert len(cell_training_indices(80, 50, 1.0, 1.0, seed=3)[1]) == 50  # capped at what the set holds
    assert len(cell_training_indices(80, 50, 0.125, "all", seed=3)[1]) == 50
    assert cell_training_indices(80, 50, 0.5, 0.0, seed=3)[1] == []
    assert cell_training_indices(80, 50, 0.5, 1.0, seed=4)[0] != small


def test_config_is_strict_and_overridable() -> None:
    config = load_config("phantom-detect", ["train.iterations=3", "grid.synthetic=[0, 1.0]"])
    assert config.train.iterations == 3 and config.grid.synthetic == [0.0, 1.0]
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(config, ["train.epochs=3"])  # a classify key in a detect config
    with pytest.raises(ConfigError, match="grid.synthetic"):
        apply_overrides(config, ["grid.synthetic=[most]"])
    classify = from_dict({"task": "classify"})
    assert classify.grid.portions == [1.0, 0.5, 0.25, 0.125] and classify.grid.synthetic == [0.0, "all"]
    # The digest ignores the grid (adding seeds resumes) but not the recipe.
    assert apply_overrides(config, ["grid.seeds=[5]"]).digest() == config.digest()
    assert apply_overrides(config, ["train.lr=0.5"]).digest() != config.digest()


def test_several_synthetic_sets_share_one_baseline_and_cells_can_be_picked() -> None:
    cells = grid.grid_cells([1.0, 0.5], [0.0, 1.0], [0, 1], sources=["mat", "copy-paste"])
    assert len(cells) == 2 * 2 * (1 + 2)  # seeds x portions x (one baseline + one cell per set)
    baselines = [c for c in cells if c.synthetic == 0]
    assert {c.source for c in baselines} == {""} and baselines[0].key == "real100_syn0_seed0"
    assert {c.key for c in cells if c.portion == 0.5 and c.seed == 1} == {
        "real50_syn0_seed1", "real50_syn100-mat_seed1", "real50_syn100-copy-paste_seed1"}
    assert cells[: len(cells) // 2] == [c for c in cells if c.seed == 0]  # seed-major, as before
    picked = grid.select_cells(cells, ["real50_syn100-mat_seed1", "real100_syn0_seed0"])
    assert [c.key for c in picked] == ["real50_syn100-mat_seed1", "real100_syn0_seed0"]
    assert grid.select_cells(cells, []) == cells
    with pytest.raises(LinopError, match="no cell 'real50_syn100-mat_seed9'.*real100_syn0_seed0"):
        grid.select_cells(cells, ["real50_syn100-mat_seed9"])


def test_study_configs_load_and_name_their_synthetic_sets() -> None:
    detect = load_config("phantom-study-detect")
    classify = load_config("phantom-study-classify")
    for config in (detect, classify):
        assert config.phantom is not None and config.phantom.sources == ["mat", "biharmonic", "copy-paste"]
        assert len(config.grid.seeds) >= 3
    assert detect.train.model["backbone"] == "resnet18" and classify.train.samples_per_epoch == 128
    with pytest.raises(ConfigError, match="phantom.sources"):
        apply_overrides(detect, ["phantom.sources=[mat, gan]"])
    with pytest.raises(ConfigError, match="not both"):
        apply_overrides(detect, ["data.synthetic=a.h5", "data.synthetic_sets={mat: b.h5}"])


def test_a_fixed_epoch_size_gives_every_cell_the_same_steps() -> None:
    import torch

    from trainer.bench.classify import training_loader
    from trainer.bench.config import ClassifyTrainSettings

    fixed = ClassifyTrainSettings(batch_size=4, samples_per_epoch=12, num_workers=0)
    for size in (5, 40):  # an eighth of the data or all of it: three batches of four either way
        batches = list(training_loader(list(range(size)), fixed, torch.Generator().manual_seed(0)))
        assert [len(b) for b in batches] == [4, 4, 4]
        seen = torch.cat(batches).tolist()
        assert len(set(seen)) == min(size, 12)  # whole passes without repeats before any image comes back
    one_pass = ClassifyTrainSettings(batch_size=4, num_workers=0)  # CheXNet: one pass per epoch, drop_last
    batches = list(training_loader(list(range(10)), one_pass, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4] and len(set(torch.cat(batches).tolist())) == 8
