"""Cascade R-CNN (Cai & Vasconcelos, 2018) on torchvision's detection pieces.

torchvision has no Cascade R-CNN and mmdetection does not install here, so the cascade RoI heads are written
on torchvision primitives (``MultiScaleRoIAlign``, ``BoxCoder``, ``Matcher``,
``BalancedPositiveNegativeSampler``, ``batched_nms``) and plugged into torchvision's ``GeneralizedRCNN``
with a ResNet FPN backbone (ResNet-50 by default; ResNet-18/34 and narrower FPNs for small machines), RPN and
transform. Settings follow mmdetection's ``cascade-rcnn_r50_fpn`` reference config:

- three stages, IoU thresholds 0.5 / 0.6 / 0.7 (no low-quality matches), 512 RoIs per image, 25 % positives,
  ground-truth boxes added to the proposals while training;
- class-agnostic box regression with target stds (.1,.1,.2,.2), (.05,.05,.1,.1), (.033,.033,.067,.067),
  i.e. BoxCoder weights (10,10,5,5), (20,20,10,10), (30,30,15,15);
- stage loss weights 1 / 0.5 / 0.25; smooth-L1 (beta 1) box loss averaged over all sampled RoIs;
- at test time the softmax class scores of the three stages are averaged and the last stage's boxes are
  kept; score threshold 0.05, NMS 0.5, 100 detections per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, WeightsEnum, resnet
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d


class Backbone(StrEnum):
    """The ResNet under the FPN. ResNet-50 is the paper's (mmdetection's reference); the lighter ones let a
    small CPU train the same cascade heads."""

    RESNET18 = "resnet18"
    RESNET34 = "resnet34"
    RESNET50 = "resnet50"

    @property
    def imagenet_weights(self) -> WeightsEnum:
        return {Backbone.RESNET18: ResNet18_Weights.IMAGENET1K_V1, Backbone.RESNET34: ResNet34_Weights.IMAGENET1K_V1,
                Backbone.RESNET50: ResNet50_Weights.IMAGENET1K_V1}[self]  # fmt: skip

    @property
    def title(self) -> str:
        return {Backbone.RESNET18: "ResNet-18", Backbone.RESNET34: "ResNet-34", Backbone.RESNET50: "ResNet-50"}[self]


@dataclass(frozen=True)
class CascadeConfig:
    """Hyper-parameters of the detector; defaults are mmdetection's cascade-rcnn_r50_fpn."""

    backbone: Backbone = Backbone.RESNET50
    fpn_channels: int = 256  # FPN output width (RPN and RoI heads run on it)
    # RoIAlign sampling points per bin side; 0 is adaptive (mmdetection), 2 is torchvision's Faster R-CNN.
    # On CPU the adaptive setting makes RoIAlign's backward the slowest op of a step (large random-init RoIs).
    roi_sampling_ratio: int = 0
    num_classes: int = 1  # foreground classes (Mass); background is added internally
    stage_iou: tuple[float, ...] = (0.5, 0.6, 0.7)
    stage_box_weights: tuple[tuple[float, float, float, float], ...] = (
        (10.0, 10.0, 5.0, 5.0),
        (20.0, 20.0, 10.0, 10.0),
        (30.0, 30.0, 15.0, 15.0),
    )
    stage_loss_weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    rois_per_image: int = 512
    positive_fraction: float = 0.25
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    representation_size: int = 1024
    # Image transform: the shorter side is resized to min_size, the longer one capped at max_size.
    min_size: int = 800
    max_size: int = 1333
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # RPN, as in the reference config.
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    trainable_backbone_layers: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbone", Backbone(self.backbone))  # frozen: normalise text to the enum
        if self.fpn_channels < 8 or self.roi_sampling_ratio < 0:
            raise ValueError("fpn_channels must be >= 8 and roi_sampling_ratio >= 0")
        n = len(self.stage_iou)
        if not (len(self.stage_box_weights) == n == len(self.stage_loss_weights)):
            raise ValueError("stage_iou, stage_box_weights and stage_loss_weights need one entry per stage")


class CascadeStage(nn.Module):
    """One cascade stage: RoI features -> two FC layers -> class logits (K+1), one class-agnostic box delta.

    Shapes: ``features`` (R, C, 7, 7) pooled RoI features -> ``logits`` (R, K+1), ``deltas`` (R, 4).
    """

    def __init__(self, in_features: int, representation_size: int, num_classes: int) -> None:
        super().__init__()
        self.head = TwoMLPHead(in_features, representation_size)
        self.cls_score = nn.Linear(representation_size, num_classes + 1)
        self.bbox_pred = nn.Linear(representation_size, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = self.head(features)
        return self.cls_score(x), self.bbox_pred(x)


class CascadeRoIHeads(nn.Module):
    """The three-stage cascade; a drop-in for torchvision's ``RoIHeads`` inside ``GeneralizedRCNN``."""

    def __init__(self, cfg: CascadeConfig, out_channels: int = 256) -> None:
        super().__init__()
        self.cfg = cfg
        self.box_roi_pool = MultiScaleRoIAlign(
            featmap_names=["0", "1", "2", "3"], output_size=7, sampling_ratio=cfg.roi_sampling_ratio
        )
        in_features = out_channels * 7 * 7
        self.stages = nn.ModuleList(
            CascadeStage(in_features, cfg.representation_size, cfg.num_classes) for _ in cfg.stage_iou
        )
        self.box_coders = [det_utils.BoxCoder(w) for w in cfg.stage_box_weights]
        self.matchers = [det_utils.Matcher(t, t, allow_low_quality_matches=False) for t in cfg.stage_iou]
        self.sampler = det_utils.BalancedPositiveNegativeSampler(cfg.rois_per_image, cfg.positive_fraction)

    # -- training ----------------------------------------------------------------------------------------
    def _sample(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]], stage: int
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Adds the ground truth to the proposals, matches at this stage's IoU and samples RoIs.

        Returns per image: sampled RoIs (S, 4), labels (S,) with 0 = background, regression targets (S, 4).
        """
        rois_out, labels_out, targets_out = [], [], []
        for props, tgt in zip(proposals, targets, strict=True):
            gt_boxes, gt_labels = tgt["boxes"], tgt["labels"]
            props = torch.cat([props, gt_boxes])
            if gt_boxes.numel() == 0:
                labels = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                matched_gt = torch.zeros_like(props)
            else:
                matched = self.matchers[stage](box_iou(gt_boxes, props))
                clamped = matched.clamp(min=0)
                labels = gt_labels[clamped].to(torch.int64)
                labels[matched < 0] = 0  # below threshold (BETWEEN_THRESHOLDS cannot occur: low == high)
                matched_gt = gt_boxes[clamped]
            pos_masks, neg_masks = self.sampler([labels])
            keep = torch.where(pos_masks[0] | neg_masks[0])[0]
            rois_out.append(props[keep])
            labels_out.append(labels[keep])
            targets_out.append(self.box_coders[stage].encode_single(matched_gt[keep], props[keep]))
        return rois_out, labels_out, targets_out

    def _stage_loss(
        self, logits: Tensor, deltas: Tensor, labels: Tensor, reg_targets: Tensor
    ) -> dict[str, Tensor]:
        loss_cls = F.cross_entropy(logits, labels)
        pos = torch.where(labels > 0)[0]
        # Normalised by all sampled RoIs, as torchvision's fastrcnn_loss and mmdetection's averaging do.
        loss_box = F.smooth_l1_loss(deltas[pos], reg_targets[pos], beta=1.0, reduction="sum") / max(
            labels.numel(), 1
        )
        return {"cls": loss_cls, "box": loss_box}

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("CascadeRoIHeads needs targets in training mode")
            return [], self._forward_train(features, proposals, image_shapes, targets)
        return self._forward_test(features, proposals, image_shapes), {}

    def _forward_train(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        rois = [p.detach() for p in proposals]
        for i, stage in enumerate(self.stages):
            rois, labels, reg_targets = self._sample(rois, targets, i)
            counts = [len(r) for r in rois]
            logits, deltas = stage(self.box_roi_pool(features, rois, image_shapes))
            parts = self._stage_loss(logits, deltas, torch.cat(labels), torch.cat(reg_targets))
            weight = self.cfg.stage_loss_weights[i]
            losses[f"loss_cls_s{i}"] = weight * parts["cls"]
            losses[f"loss_box_s{i}"] = weight * parts["box"]
            if i + 1 < len(self.stages):
                # The next stage trains on this stage's refined boxes, without gradient through them.
                refined = self.box_coders[i].decode_single(deltas.detach(), torch.cat(rois))
                rois = [
                    clip_boxes_to_image(b, shape)
                    for b, shape in zip(refined.split(counts), image_shapes, strict=True)
                ]
        return losses

    # -- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def _forward_test(
        self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        counts = [len(p) for p in proposals]
        rois = torch.cat(proposals) if proposals else torch.zeros((0, 4))
        scores_sum = None
        for i, stage in enumerate(self.stages):
            per_image = list(rois.split(counts))
            logits, deltas = stage(self.box_roi_pool(features, per_image, image_shapes))
            probs = F.softmax(logits, dim=-1)
            scores_sum = probs if scores_sum is None else scores_sum + probs
            rois = self.box_coders[i].decode_single(deltas, rois)
            rois = torch.cat(
                [clip_boxes_to_image(b, s) for b, s in zip(rois.split(counts), image_shapes, strict=True)]
            )
        assert scores_sum is not None
        scores = scores_sum / len(self.stages)
        results = []
        for boxes, sc in zip(rois.split(counts), scores.split(counts), strict=True):
            results.append(self._postprocess(boxes, sc))
        return results

    def _postprocess(self, boxes: Tensor, scores: Tensor) -> dict[str, Tensor]:
        """(R, 4) boxes and (R, K+1) averaged probabilities -> thresholded, NMS-ed detections."""
        num_fg = scores.shape[1] - 1
        labels = torch.arange(1, num_fg + 1, device=scores.device).expand(boxes.shape[0], num_fg).reshape(-1)
        boxes = boxes[:, None, :].expand(-1, num_fg, 4).reshape(-1, 4)
        fg_scores = scores[:, 1:].reshape(-1)
        keep = torch.where(fg_scores > self.cfg.score_thresh)[0]
        boxes, fg_scores, labels = boxes[keep], fg_scores[keep], labels[keep]
        keep = remove_small_boxes(boxes, 1e-2)
        boxes, fg_scores, labels = boxes[keep], fg_scores[keep], labels[keep]
        keep = batched_nms(boxes, fg_scores, labels, self.cfg.nms_thresh)[: self.cfg.detections_per_img]
        return {"boxes": boxes[keep], "scores": fg_scores[keep], "labels": labels[keep]}


class CascadeRCNN(GeneralizedRCNN):
    """Cascade R-CNN with a ResNet FPN backbone.

    Input: a list of (3, H, W) float tensors in [0, 1] (gray images replicated to 3 channels) and, when
    training, targets ``{"boxes": (N, 4) xyxy float, "labels": (N,) int64 in 1..K}`` (N may be 0 for a
    normal image). Output: a loss dict when training, else ``[{"boxes", "scores", "labels"}]`` in the input
    images' pixel coordinates.
    """

    def __init__(self, backbone: nn.Module, cfg: CascadeConfig) -> None:
        anchor_gen = AnchorGenerator(
            sizes=tuple((s,) for s in cfg.anchor_sizes),
            aspect_ratios=(cfg.aspect_ratios,) * len(cfg.anchor_sizes),
        )
        rpn = RegionProposalNetwork(
            anchor_gen,
            RPNHead(backbone.out_channels, anchor_gen.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7,
            bg_iou_thresh=0.3,
            batch_size_per_image=256,
            positive_fraction=0.5,
            pre_nms_top_n={"training": cfg.rpn_pre_nms_top_n_train, "testing": cfg.rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": cfg.rpn_post_nms_top_n_train, "testing": cfg.rpn_post_nms_top_n_test},
            nms_thresh=cfg.rpn_nms_thresh,
        )
        transform = GeneralizedRCNNTransform(
            cfg.min_size, cfg.max_size, list(cfg.image_mean), list(cfg.image_std)
        )
        super().__init__(backbone, rpn, CascadeRoIHeads(cfg, backbone.out_channels), transform)
        self.cfg = cfg


def _resnet_fpn(cfg: CascadeConfig, pretrained: bool) -> BackboneWithFPN:
    """torchvision's ``resnet_fpn_backbone`` (layers 1-4 into the FPN, a max-pool level on top), with the FPN
    width ``cfg.fpn_channels`` instead of its fixed 256."""
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    body = getattr(resnet, str(cfg.backbone))(weights=None, norm_layer=norm)
    trainable = cfg.trainable_backbone_layers if pretrained else 5
    train_names = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
    if trainable == 5:
        train_names.append("bn1")
    for name, parameter in body.named_parameters():
        if all(not name.startswith(layer) for layer in train_names):
            parameter.requires_grad_(False)
    stage_width = body.inplanes // 8  # layer1's output width: 64 (basic blocks) or 256 (bottlenecks)
    return BackboneWithFPN(
        body,
        return_layers={f"layer{k}": str(k - 1) for k in range(1, 5)},
        in_channels_list=[stage_width * 2**k for k in range(4)],
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def cascade_rcnn_fpn(cfg: CascadeConfig | None = None, *, backbone_weights: Path | None = None) -> CascadeRCNN:
    """Builds the detector on ``cfg.backbone``.

    ``backbone_weights``: a local ImageNet state dict of that ResNet (for example torchvision's cached
    ``resnet50-0676ba61.pth``, see :func:`linop_core.weights.torchvision_weights_file`). With weights the
    batch norms are frozen and only the top ``trainable_backbone_layers`` train, as in torchvision; without
    them (random init) every layer trains with ordinary batch norm.
    """
    cfg = cfg or CascadeConfig()
    pretrained = backbone_weights is not None
    backbone = _resnet_fpn(cfg, pretrained)
    if pretrained:
        state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
        missing, unexpected = backbone.body.load_state_dict(state, strict=False)
        # The FPN body drops the classifier (fc.*); anything else missing means a wrong file.
        if missing or any(not k.startswith("fc.") for k in unexpected):
            from linop_core.errors import ModelError

            raise ModelError(backbone_weights, f"not a {cfg.backbone.title} state dict (missing {missing[:3]}...)")
    return CascadeRCNN(backbone, cfg)


def cascade_rcnn_resnet50_fpn(
    cfg: CascadeConfig | None = None, *, backbone_weights: Path | None = None
) -> CascadeRCNN:
    """The paper's detector: :func:`cascade_rcnn_fpn` on ResNet-50 (whatever ``cfg.backbone`` says)."""
    from dataclasses import replace

    return cascade_rcnn_fpn(replace(cfg or CascadeConfig(), backbone=Backbone.RESNET50),
                            backbone_weights=backbone_weights)  # fmt: skip
