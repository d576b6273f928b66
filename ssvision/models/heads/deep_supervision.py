"""Contrastive deep supervision: SupCon on projected intermediate-stage features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from ..network import require
from .base import AuxContext, BaseAuxHead


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Single-view supervised contrastive loss (SupCon) over a batch.

    With ``z_i = emb_i / |emb_i|``, ``s_ij = z_i . z_j / temperature``, positives
    ``P(i) = {j != i : y_j = y_i}`` and ``A(i) = {j != i}``::

        l_i  = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )
        loss = mean of l_i over anchors with |P(i)| > 0

    Returns ``0 * sum(emb)`` (a zero that keeps the graph) when no anchor has a positive.

    Args:
        emb: ``(N, D)`` embeddings.
        labels: ``(N,)`` long class indices.
        temperature: softmax temperature.
    """
    n = emb.shape[0]
    z = F.normalize(emb.float(), dim=1)
    sim = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=emb.device)
    sim = sim.masked_fill(self_mask, float('-inf'))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    num_pos = pos.sum(dim=1)
    has_pos = num_pos > 0
    if not has_pos.any():
        return 0.0 * emb.sum()
    # masked_fill before summing: the diagonal holds -inf, and -inf * 0 would be nan.
    pos_log_prob = log_prob.masked_fill(~pos, 0.0).sum(dim=1)
    per_anchor = -pos_log_prob[has_pos] / num_pos[has_pos]
    return per_anchor.mean()


@MODELS.register_module()
class DeepSupervisionContrastHead(BaseAuxHead):
    """Contrastive deep supervision of intermediate stages (classification-only).

    For each ``s`` in ``stages``: ``h = GAP(student.forward_stages(x)[s])`` ``(N, C_s)``,
    ``e = MLP_s(h)`` with ``MLP_s = Linear(C_s, proj_dim) - ReLU - Linear(proj_dim,
    proj_dim)`` (its own per stage), and :func:`supcon_loss` on ``e``. The batch ``x`` is
    the labeled view ``ctx.inputs['sup']`` with its ``gt_label``, plus (``use_labels``,
    when the selector ran, i.e. ``ctx.labels`` / ``ctx.weight`` exist and
    ``ctx.inputs['unsup_student']`` is present) the strong views of the unlabeled images
    whose selection weight is > 0, labelled with their pseudo-labels (membership only;
    soft weights are not used). Both go through one extra ``forward_stages`` call. A
    single view per image is enough: positives are other images of the same class::

        aux_deepsup_loss = loss_weight * mean_s SupCon_s

    The extra forward runs in the student's mode (train: BN batch statistics, running
    statistics updated). Classification-only: labels must be one per image; dense
    outputs would need pixel sampling first.

    Args:
        stages (Sequence[int]): indices into ``forward_stages``'s list. Default (0, 1).
        proj_dim (int): hidden and output size of the projection MLPs. Default 64.
        temperature (float): SupCon temperature. Default 0.2.
        loss_weight (float): multiplier. Default 0.5.
        in_channels (Sequence[int] | None): channels of each listed stage; None takes
            them from the student at :meth:`setup`. Default None.
        use_labels (bool): also use selected pseudo-labelled unlabeled images.
            Default True.
    """

    def __init__(self, stages: Sequence[int] = (0, 1), proj_dim: int = 64,
                 temperature: float = 0.2, loss_weight: float = 0.5,
                 in_channels: Sequence[int] | None = None, use_labels: bool = True) -> None:
        super().__init__(loss_weight)
        self.stages = tuple(int(s) for s in stages)
        if not self.stages:
            raise ValueError('stages must name at least one stage')
        if proj_dim < 1:
            raise ValueError(f'proj_dim must be >= 1, got {proj_dim}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if in_channels is not None and len(in_channels) != len(self.stages):
            raise ValueError(f'in_channels {tuple(in_channels)} must give one value per '
                             f'stage {self.stages}')
        self.temperature = float(temperature)
        self.use_labels = bool(use_labels)
        self.projectors = nn.ModuleList()
        for i in range(len(self.stages)):
            first = (nn.LazyLinear(proj_dim) if in_channels is None
                     else nn.Linear(int(in_channels[i]), proj_dim))
            self.projectors.append(nn.Sequential(first, nn.ReLU(inplace=True),
                                                 nn.Linear(proj_dim, proj_dim)))

    def setup(self, student: nn.Module) -> None:
        """Size the projectors from the student's stage channels when not given.

        Runs ``forward_stages`` once on a ``(2, in_channels, 32, 32)`` zero batch in eval
        mode (BatchNorm statistics untouched); leaves the lazy layers (sized on the first
        call) if that fails.
        """
        require(student, 'forward_stages', type(self).__name__)
        if not any(isinstance(p[0], nn.LazyLinear) for p in self.projectors):
            return
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                feats = student.forward_stages(torch.zeros(2, student.in_channels, 32, 32))
            channels = [int(feats[s].shape[1]) for s in self.stages]
        except Exception:  # noqa: BLE001 - fall back to lazy sizing
            return
        finally:
            student.train(was_training)
        for proj, ch in zip(self.projectors, channels):
            if isinstance(proj[0], nn.LazyLinear):
                proj[0] = nn.Linear(ch, proj[0].out_features)

    def _batch(self, ctx: AuxContext) -> tuple[torch.Tensor, torch.Tensor]:
        x = ctx.inputs['sup']
        y = ctx.data_samples['sup']['gt_label']
        if y.dim() != 1:
            raise TypeError(f'{type(self).__name__} is classification-only: gt_label must '
                            f'be (N,), got shape {tuple(y.shape)}')
        if (self.use_labels and ctx.labels is not None and ctx.weight is not None
                and 'unsup_student' in ctx.inputs):
            if ctx.labels.dim() != 1:
                raise TypeError(f'{type(self).__name__} is classification-only: pseudo-'
                                f'labels must be (M,), got shape {tuple(ctx.labels.shape)}')
            keep = ctx.weight > 0
            if keep.any():
                x = torch.cat([x, ctx.inputs['unsup_student'][keep]], dim=0)
                y = torch.cat([y, ctx.labels[keep].to(y.dtype)], dim=0)
        return x, y

    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        x, y = self._batch(ctx)
        feats = ctx.student.forward_stages(x)
        bad = [s for s in self.stages if not -len(feats) <= s < len(feats)]
        if bad:
            raise IndexError(f'stages {bad} out of range: the student has {len(feats)} stages')
        total = 0.0
        for proj, s in zip(self.projectors, self.stages):
            f = feats[s]
            pooled = f.flatten(2).mean(dim=2) if f.dim() > 2 else f
            total = total + supcon_loss(proj(pooled), y, self.temperature)
        return {'aux_deepsup_loss': self.loss_weight * total / len(self.stages)}
