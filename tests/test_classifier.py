"""trainer.classifier: the one classifier-training loop of the proof and the benchmark."""

from __future__ import annotations

import torch
from torch import nn

from trainer.classifier import ClassifierRecipe, LrSchedule, TensorBatches, fit_classifier, predict_classes


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = torch.rand(n, 1, 4, 4, generator=gen) * 0.2 + labels.view(-1, 1, 1, 1).float()
    return images, labels


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def test_tensor_batches_skip_a_last_single_image_but_count_it() -> None:
    images, labels = _data(9)
    batches = TensorBatches(images, labels, 4, torch.Generator().manual_seed(1))
    assert len(batches) == 3
    assert [len(b["label"]) for b in batches] == [4, 4]


def test_one_cycle_learns_and_is_deterministic() -> None:
    images, labels = _data()
    recipe = ClassifierRecipe(epochs=5, lr=0.05, schedule=LrSchedule.ONE_CYCLE)
    models = []
    for _ in range(2):
        model = _model()
        gen = torch.Generator().manual_seed(2)
        history = fit_classifier(model, TensorBatches(images, labels, 8, gen), recipe, device=torch.device("cpu"),
                                 generator=gen)
        assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5] and "val_loss" not in history[0]
        models.append(model)
    assert (predict_classes(models[0].eval(), images) == labels).float().mean() >= 0.9
    torch.testing.assert_close(models[0].state_dict(), models[1].state_dict(), rtol=0, atol=0)


def test_plateau_recipe_keeps_the_weights_of_the_best_validation_loss() -> None:
    images, labels = _data()
    model = _model()
    losses = iter([0.5, 0.2, 0.9])  # epoch 2 is the best
    kept: list[dict[str, torch.Tensor]] = []

    def validation_loss(trained: nn.Module) -> float:
        kept.append({k: v.clone() for k, v in trained.state_dict().items()})
        return next(losses)

    gen = torch.Generator().manual_seed(3)
    recipe = ClassifierRecipe(epochs=3, lr=0.05, schedule=LrSchedule.PLATEAU, hflip=False)
    history = fit_classifier(model, TensorBatches(images, labels, 8, gen), recipe, device=torch.device("cpu"),
                             generator=gen, validation_loss=validation_loss)
    assert [r["val_loss"] for r in history] == [0.5, 0.2, 0.9]
    torch.testing.assert_close(model.state_dict(), kept[1], rtol=0, atol=0)
