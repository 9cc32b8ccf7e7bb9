"""Cascade R-CNN on torchvision pieces: it learns, and its outputs have the detection format."""

from __future__ import annotations

import pytest
import torch

from trainer.bench.cascade_rcnn import CascadeConfig, CascadeRoIHeads, cascade_rcnn_resnet50_fpn

SMALL = CascadeConfig(
    min_size=128,
    max_size=128,
    rois_per_image=64,
    rpn_pre_nms_top_n_train=200,
    rpn_post_nms_top_n_train=100,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    representation_size=128,
)


def _blob_batch(gen: torch.Generator, n: int = 2, size: int = 128) -> tuple[list[torch.Tensor], list[dict]]:
    """Gray noise images with one bright square 'mass' each (the last image is normal: no box)."""
    images, targets = [], []
    for i in range(n):
        img = 0.2 + 0.05 * torch.rand(3, size, size, generator=gen)
        if i == n - 1:
            boxes = torch.zeros((0, 4))
        else:
            s = int(torch.randint(24, 48, (1,), generator=gen))
            x0, y0 = (int(v) for v in torch.randint(0, size - s, (2,), generator=gen))
            img[:, y0 : y0 + s, x0 : x0 + s] += 0.6
            boxes = torch.tensor([[x0, y0, x0 + s, y0 + s]], dtype=torch.float32)
        images.append(img.clamp(0, 1))
        targets.append({"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)})
    return images, targets


@pytest.mark.slow
def test_training_loss_falls_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = cascade_rcnn_resnet50_fpn(SMALL)
    model.train()
    images, targets = _blob_batch(torch.Generator().manual_seed(1), n=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = []
    for _ in range(8):
        losses = model(images, targets)
        assert set(losses) >= {f"loss_cls_s{i}" for i in range(3)} | {f"loss_box_s{i}" for i in range(3)}
        assert {"loss_objectness", "loss_rpn_box_reg"} <= set(losses)
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert sum(history[-2:]) / 2 < 0.7 * sum(history[:2]) / 2, history


def test_stage_loss_weights_scale_the_stage_losses() -> None:
    """With the same RoIs, stage i's reported losses are its raw loss times the configured weight."""
    torch.manual_seed(0)
    heads = CascadeRoIHeads(CascadeConfig(stage_loss_weights=(1.0, 0.5, 0.25), rois_per_image=32), 8)
    logits, deltas = torch.randn(6, 2), torch.randn(6, 4)
    labels, reg = torch.tensor([1, 0, 0, 1, 0, 0]), torch.randn(6, 4)
    raw = heads._stage_loss(logits, deltas, labels, reg)
    expected_box = torch.nn.functional.smooth_l1_loss(deltas[[0, 3]], reg[[0, 3]], reduction="sum") / 6
    assert torch.allclose(raw["box"], expected_box)
    assert torch.allclose(raw["cls"], torch.nn.functional.cross_entropy(logits, labels))


def test_inference_output_format_and_score_average() -> None:
    torch.manual_seed(0)
    model = cascade_rcnn_resnet50_fpn(SMALL).eval()
    images, _ = _blob_batch(torch.Generator().manual_seed(2), n=2, size=160)
    images[1] = images[1][:, :120, :]  # a non-square image: boxes come back in its own coordinates
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det, img in zip(out, images, strict=True):
        assert set(det) == {"boxes", "scores", "labels"}
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4) and det["scores"].shape == (n,) and det["labels"].shape == (n,)
        assert n <= SMALL.detections_per_img
        if n:
            assert (det["scores"] > SMALL.score_thresh).all() and (det["scores"] <= 1).all()
            assert (det["labels"] == 1).all()
            assert (det["boxes"][:, 2] <= img.shape[2] + 1e-3).all()
            assert (det["boxes"][:, 3] <= img.shape[1] + 1e-3).all()
            assert (det["boxes"][:, :2] <= det["boxes"][:, 2:]).all()


def test_test_time_scores_are_the_mean_of_the_stage_probabilities() -> None:
    heads = CascadeRoIHeads(CascadeConfig(score_thresh=0.0), 8).eval()
    logit_gaps = (2.0, 1.0, 0.0)
    with torch.no_grad():
        for stage, gap in zip(heads.stages, logit_gaps, strict=True):
            for layer in (stage.cls_score, stage.bbox_pred):
                layer.weight.zero_()
                layer.bias.zero_()
            stage.cls_score.bias[1] = gap  # P(mass) = sigmoid(gap) whatever the features
    features = {k: torch.zeros(1, 8, 32 // 2**i, 32 // 2**i) for i, k in enumerate(["0", "1", "2", "3"])}
    proposals = [torch.tensor([[4.0, 4.0, 20.0, 20.0]])]
    det = heads(features, proposals, [(32, 32)])[0][0]
    expected = sum(torch.sigmoid(torch.tensor(g)) for g in logit_gaps) / 3
    assert det["scores"].tolist() == pytest.approx([float(expected)], abs=1e-6)
    assert det["boxes"].tolist() == [[4.0, 4.0, 20.0, 20.0]]  # zero deltas keep the proposal


def test_postprocess_thresholds_and_suppresses_duplicates() -> None:
    """Detections below the score threshold are dropped and NMS removes a duplicate box."""
    heads = CascadeRoIHeads(CascadeConfig(score_thresh=0.3, nms_thresh=0.5), 8)
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60.0]])
    probs = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.8, 0.2]])
    det = heads._postprocess(boxes, probs)
    assert det["boxes"].tolist() == [[0, 0, 10, 10]]
    assert det["scores"].tolist() == pytest.approx([0.9])


def test_light_backbones_keep_torchvisions_resnet_fpn_layout() -> None:
    from torch import nn
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    from trainer.bench.cascade_rcnn import Backbone, _resnet_fpn, cascade_rcnn_fpn

    # ResNet-50 at the default width is torchvision's resnet_fpn_backbone, parameter for parameter
    ours = _resnet_fpn(CascadeConfig(), pretrained=False)
    theirs = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    light = CascadeConfig(**{**SMALL.__dict__, "backbone": "resnet18", "fpn_channels": 32, "roi_sampling_ratio": 2})
    assert light.backbone is Backbone.RESNET18
    model = cascade_rcnn_fpn(light).eval()
    assert model.backbone.out_channels == 32 and model.roi_heads.box_roi_pool.sampling_ratio == 2
    with torch.no_grad():
        out = model([torch.rand(3, 128, 96)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
    with pytest.raises(ValueError):
        CascadeConfig(backbone="vgg16")
