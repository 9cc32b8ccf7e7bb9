"""Pretrained weights are found on disk or refused with a message naming the file; nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import ResNet50_Weights

from linop_core.errors import ModelError
from linop_core.weights import resolve_weights_file, torchvision_cache_file


def test_missing_cache_file_names_the_file_and_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelError) as info:
        resolve_weights_file(None, ResNet50_Weights.IMAGENET1K_V1, what="the detector backbone")
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "the detector backbone" in message and "\n" not in message


def test_cached_file_and_explicit_path_are_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = torchvision_cache_file(ResNet50_Weights.IMAGENET1K_V1)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_weights_file(None, ResNet50_Weights.IMAGENET1K_V1, what="x") == cached
    own = tmp_path / "mine.pth"
    with pytest.raises(ModelError, match="mine.pth"):
        resolve_weights_file(own, ResNet50_Weights.IMAGENET1K_V1, what="x")
    own.write_bytes(b"y")
    assert resolve_weights_file(own, ResNet50_Weights.IMAGENET1K_V1, what="x") == own
