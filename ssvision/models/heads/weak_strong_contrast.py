"""Weak-to-strong contrastive learning between instance features (WSCoL), for detectors.

Yang, Tang, Zhang, Li, Ye, Zhang and Zhu, "Rethinking Weak-to-Strong Augmentation in
Source-Free Domain Adaptive Object Detection" (2024): in a mean-teacher detector the strong
view can erase what makes an object its class; the weak view keeps it. WSCoL maps the
teacher's weak-view and the student's strong-view instance features into one space with
a mapping network, labels the weak instances by pseudo-labels refined with class
prototypes, and pulls each strong instance toward the weak instances of its class and
away from the other classes and from background, with background weighted by how sure
the teacher is that it is background.

This head implements that idea on ssvision's pseudo-boxes (what it does, exactly):

1. **Instances.** The kept pseudo-boxes, paired row for row in the two views
   (``ctx.boxes.weak`` / ``ctx.boxes.cls``), plus ``num_background`` random boxes per
   image drawn in the weak view where no teacher detection scores ``bg_score`` or more
   at IoU ``bg_iou`` or more, moved into the strong view with the same homographies.
2. **Features.** ``instance_features`` (RoIAlign over the FPN, averaged) of the teacher on
   the weak view (no gradient) and of the student on the strong view (BatchNorm running
   statistics untouched), through one mapping MLP, L2-normalised. The weak side is
   detached: it is the target.
3. **Labels.** Foreground: the pseudo-box class, unless the class prototypes (EMA of the
   weak embeddings per class, momentum ``proto_momentum``) disagree strongly:
   ``argmax(proto_mix * onehot(y) + (1 - proto_mix) * softmax(z_w P^T / proto_temperature))``.
   Background: a class of its own.
4. **Loss.** Supervised contrast of every strong instance (anchor) against all weak
   instances of the batch (keys): positives are the keys of the anchor's label (its own
   weak pair among them), at ``temperature``. Foreground anchors weigh 1; background
   anchors weigh ``1 - s``, ``s`` the highest teacher score among detections overlapping
   the box (the teacher's uncertainty about it being background).

With no pseudo-box in the batch the loss is exactly 0 (background alone teaches nothing
about classes). Prototypes move in training mode only and are summed across processes.

Defaults: the paper's code was not public when this was written, so the values here
are the common contrastive ones, not the authors' and not tuned: ``temperature=0.07``
(supervised contrast), a 2-layer mapping MLP to 128 dimensions, prototype momentum 0.99.
The extra cost per step is one teacher backbone pass on the weak views and one student
backbone pass on the strong views (the detector's own passes do not return features).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS
from ssvision.structures import DetInstances, transfer_boxes

from ..network import frozen_bn_stats, require
from .base import AuxContext, BaseAuxHead


@MODELS.register_module()
class WeakStrongContrastHead(BaseAuxHead):
    """WSCoL's weak-to-strong instance contrast (see the module docstring).

    Args:
        loss_weight: multiplier of ``aux_wscol_loss``.
        proj_dim / hidden_dim: mapping MLP sizes (``hidden_dim`` None: the feature width).
        temperature: contrast temperature.
        proto_momentum: EMA momentum of the class prototypes.
        proto_mix: weight of the pseudo-box class against the prototypes' vote (1 keeps
            the pseudo-box classes).
        proto_temperature: softmax temperature of the prototype vote.
        num_background: random background boxes drawn per image.
        bg_iou / bg_score: a background box overlaps no teacher detection scoring
            ``bg_score`` or more at IoU ``bg_iou`` or more.
        min_box_size: smallest side (pixels) of a box kept after the move.
    """

    box_level = True
    required_views = ('unsup_teacher', 'unsup_student')

    def __init__(self, loss_weight: float = 1.0, proj_dim: int = 128,
                 hidden_dim: int | None = None, temperature: float = 0.07,
                 proto_momentum: float = 0.99, proto_mix: float = 0.5,
                 proto_temperature: float = 0.1, num_background: int = 4,
                 bg_iou: float = 0.3, bg_score: float = 0.3, min_box_size: float = 4.0) -> None:
        super().__init__(loss_weight)
        if temperature <= 0 or proto_temperature <= 0:
            raise ValueError('temperatures must be > 0')
        if not 0.0 <= proto_momentum < 1.0 or not 0.0 <= proto_mix <= 1.0:
            raise ValueError('proto_momentum must be in [0, 1) and proto_mix in [0, 1]')
        self.proj_dim, self.hidden_dim = int(proj_dim), hidden_dim
        self.temperature, self.proto_temperature = float(temperature), float(proto_temperature)
        self.proto_momentum, self.proto_mix = float(proto_momentum), float(proto_mix)
        self.num_background = int(num_background)
        self.bg_iou, self.bg_score, self.min_box_size = float(bg_iou), float(bg_score), \
            float(min_box_size)
        self.mapper: nn.Module | None = None

    def setup(self, student: nn.Module) -> None:
        require(student, 'instance_features', type(self).__name__)
        c = int(student.feature_channels)
        hidden = int(self.hidden_dim or c)
        self.mapper = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, self.proj_dim))
        k = int(student.num_classes)
        self.register_buffer('prototypes', torch.zeros(k, self.proj_dim))
        self.register_buffer('proto_count', torch.zeros(k))

    # ---------------------------------------------------------------- pieces
    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mapper(feats), dim=1)

    def background_boxes(self, dets, shape, gen: torch.Generator) -> torch.Tensor:
        """Up to ``num_background`` random boxes (weak-view pixels) away from confident
        teacher detections; ``(n, 4)``."""
        from torchvision.ops import box_iou
        h, w = int(shape[0]), int(shape[1])
        n = self.num_background * 4  # candidates
        side = torch.rand(n, 2, generator=gen) * 0.4 + 0.1  # 10-50 % of the image side
        bw, bh = side[:, 0] * w, side[:, 1] * h
        x0 = torch.rand(n, generator=gen) * (w - bw)
        y0 = torch.rand(n, generator=gen) * (h - bh)
        cand = torch.stack([x0, y0, x0 + bw, y0 + bh], dim=1).to(dets.bboxes.device)
        sure = dets.bboxes[dets.scores >= self.bg_score] if dets.scores is not None else \
            dets.bboxes
        if len(sure):
            cand = cand[box_iou(cand, sure.float()).max(dim=1).values < self.bg_iou]
        return cand[:self.num_background]

    @staticmethod
    def background_uncertainty(boxes: torch.Tensor, dets) -> torch.Tensor:
        """Highest teacher score among detections overlapping each box (IoU > 0.1)."""
        from torchvision.ops import box_iou
        if len(boxes) == 0 or len(dets) == 0 or dets.scores is None:
            return boxes.new_zeros(len(boxes))
        iou = box_iou(boxes, dets.bboxes.float())
        scores = dets.scores.float()[None].expand_as(iou)
        return torch.where(iou > 0.1, scores, torch.zeros_like(scores)).max(dim=1).values

    @torch.no_grad()
    def refine_labels(self, z_weak: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pseudo-box classes, overruled where the prototypes disagree strongly."""
        known = self.proto_count > 0
        if self.proto_mix >= 1.0 or not bool(known.any()) or len(labels) == 0:
            return labels
        sim = z_weak @ self.prototypes.t() / self.proto_temperature
        vote = sim.masked_fill(~known[None], float('-inf')).softmax(dim=1)
        onehot = F.one_hot(labels, self.prototypes.shape[0]).to(vote.dtype)
        return (self.proto_mix * onehot + (1 - self.proto_mix) * vote).argmax(dim=1)

    @torch.no_grad()
    def update_prototypes(self, z_weak: torch.Tensor, labels: torch.Tensor) -> None:
        from ssvision.models.selectors._dist import sum_across_ranks
        k = self.prototypes.shape[0]
        sums = z_weak.new_zeros(k, self.proj_dim).index_add_(0, labels, z_weak)
        counts = torch.bincount(labels, minlength=k).to(z_weak.dtype)
        sums, counts = sum_across_ranks(sums), sum_across_ranks(counts)
        seen = counts > 0
        mean = F.normalize(sums[seen] / counts[seen, None], dim=1)
        old = self.prototypes[seen]
        fresh = (self.proto_count[seen] == 0)[:, None]
        m = self.proto_momentum
        new = torch.where(fresh, mean, F.normalize(m * old + (1 - m) * mean, dim=1))
        self.prototypes[seen] = new
        self.proto_count[seen] += counts[seen]

    def contrast(self, z_strong: torch.Tensor, z_weak: torch.Tensor, labels: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
        """Weighted supervised contrast of strong anchors against weak keys (same label =
        positive; every anchor has at least its own pair)."""
        logits = z_strong @ z_weak.t() / self.temperature
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        pos = (labels[:, None] == labels[None, :]).to(log_prob.dtype)
        per_anchor = -(pos * log_prob).sum(dim=1) / pos.sum(dim=1)
        return (weights * per_anchor).sum() / weights.sum().clamp_min(1e-12)

    # ------------------------------------------------------------------- loss
    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:

        zero = sum(p.sum() for p in self.mapper.parameters()) * 0.0
        boxes = ctx.boxes
        if boxes is None or sum(len(w) for w in boxes.weak) == 0:
            return {'aux_wscol_loss': zero, 'aux_wscol_n': zero.detach()}
        weak_imgs, strong_imgs = ctx.inputs['unsup_teacher'], ctx.inputs['unsup_student']
        t_meta = ctx.data_samples['unsup_teacher']
        s_meta = ctx.data_samples['unsup_student']
        fg_w, fg_s, bg_w, bg_s, bg_unc, labels = [], [], [], [], [], []
        for i in range(len(weak_imgs)):
            fg_w.append(boxes.weak[i].bboxes.float())
            fg_s.append(boxes.cls[i].bboxes.float())
            labels.append(boxes.weak[i].labels.long())
            gen = torch.Generator().manual_seed(int(ctx.iter) * 1009 + i)
            dets = boxes.dets[i]
            cand = self.background_boxes(dets, weak_imgs[i].shape[-2:], gen)
            inst = DetInstances(cand, cand.new_zeros(len(cand), dtype=torch.long))
            moved, ok = transfer_boxes(inst, t_meta['homography'][i], s_meta['homography'][i],
                                       strong_imgs[i].shape[-2:], self.min_box_size)
            bg_w.append(cand[ok])
            bg_s.append(moved.bboxes.float())
            bg_unc.append(self.background_uncertainty(cand[ok], dets))
        n_fg = sum(len(b) for b in fg_w)
        # one pass per network: foreground then background boxes of each image
        both_w = [torch.cat([f, b]) for f, b in zip(fg_w, bg_w)]
        both_s = [torch.cat([f, b]) for f, b in zip(fg_s, bg_s)]
        with torch.no_grad():
            f_weak = ctx.teacher.instance_features(list(weak_imgs), both_w)
        with frozen_bn_stats(ctx.student):
            f_strong = ctx.student.instance_features(list(strong_imgs), both_s)
        z_w = self.embed(f_weak).detach()
        z_s = self.embed(f_strong)
        # split per image into fg / bg rows, then regroup fg first
        sizes = [len(f) + len(b) for f, b in zip(fg_w, bg_w)]
        fg_rows, bg_rows, start = [], [], 0
        for f, size in zip(fg_w, sizes):
            fg_rows.append(torch.arange(start, start + len(f)))
            bg_rows.append(torch.arange(start + len(f), start + size))
            start += size
        fg_idx, bg_idx = torch.cat(fg_rows), torch.cat(bg_rows)
        fg_idx, bg_idx = fg_idx.to(z_w.device), bg_idx.to(z_w.device)
        y = torch.cat(labels).to(z_w.device)
        y_ref = self.refine_labels(z_w[fg_idx], y)
        k = self.prototypes.shape[0]
        all_labels = torch.cat([y_ref, y_ref.new_full((len(bg_idx),), k)])
        order = torch.cat([fg_idx, bg_idx])
        unc = torch.cat(bg_unc).to(z_w.device) if bg_unc else z_w.new_zeros(0)
        weights = torch.cat([z_w.new_ones(len(fg_idx)), (1.0 - unc).clamp(0.0, 1.0)])
        loss = self.contrast(z_s[order], z_w[order], all_labels, weights)
        if self.training:
            self.update_prototypes(z_w[fg_idx], y_ref)
        relabel = (y_ref != y).float().mean() if n_fg else zero.detach()
        return {'aux_wscol_loss': self.loss_weight * loss,
                'aux_wscol_n': torch.tensor(float(n_fg + len(bg_idx)), device=z_w.device),
                'aux_wscol_relabel': relabel.detach()}
