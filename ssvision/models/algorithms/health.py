"""Pseudo-label health figures of one batch, as pure functions."""

from __future__ import annotations

import torch


@torch.no_grad()
def selection_health(probs: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                     samples: dict | None = None,
                     extra: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Fraction kept, per-class kept counts and rates, pseudo-label accuracy.

    ``sel_frac`` / ``sel_weight``: share of samples (pixels) kept / mean weight;
    ``teacher_conf``: mean top probability; ``sel_n_<c>``: kept samples whose
    pseudo-label is ``c``; ``pl_n_<c>``: all samples (kept or not) whose pseudo-label is
    ``c`` (the teacher's class distribution on unlabeled data, read by the drift alarm);
    ``sel_frac_<c>``: their fraction of all samples the teacher labels ``c`` (0 when it
    labels none); ``pl_acc_all`` / ``pl_acc``: accuracy of all / the kept
    pseudo-labels against ``samples['true_seg']`` or ``samples['true_label']`` (known for
    built-in data, used here only, never for training); ``pl_prec_<c>``: the share of
    kept pseudo-labels ``c`` that are right (only for classes kept in the batch: a
    class whose kept labels are drawn into another is where confirmation bias starts);
    ``extra``: the selector's
    ``extra_log()`` values.
    """
    kept = weight > 0
    num_classes = probs.shape[1]
    out = {
        'sel_frac': kept.float().mean(),
        'sel_weight': weight.float().mean(),
        'teacher_conf': probs.max(dim=1).values.mean(),
    }
    counts = torch.bincount(labels[kept].flatten(), minlength=num_classes)
    totals = torch.bincount(labels.flatten(), minlength=num_classes)
    rates = counts.float() / totals.clamp_min(1).float()
    for c in range(num_classes):
        out[f'sel_n_{c}'] = counts[c].float()
        out[f'pl_n_{c}'] = totals[c].float()
        out[f'sel_frac_{c}'] = rates[c]
    for key, value in (extra or {}).items():
        out[key] = torch.as_tensor(value, dtype=torch.float32)
    true = None
    if isinstance(samples, dict):
        # per image (classification) or per pixel (dense tasks: true_seg)
        true = samples.get('true_seg', samples.get('true_label'))
    if isinstance(true, torch.Tensor) and true.shape == labels.shape[:1] and labels.dim() > 1:
        true = true.view(-1, *([1] * (labels.dim() - 1))).expand_as(labels)
    if isinstance(true, torch.Tensor) and true.shape == labels.shape:
        known = (true >= 0) & (true < num_classes)  # drops -1 and ignore indices
        if known.any():
            out['pl_acc_all'] = (labels[known] == true[known]).float().mean()
            sel = known & kept
            if sel.any():
                right = labels[sel] == true[sel]
                out['pl_acc'] = right.float().mean()
                kept_c = torch.bincount(labels[sel], minlength=num_classes)
                right_c = torch.bincount(labels[sel][right], minlength=num_classes)
                for c in torch.nonzero(kept_c).flatten().tolist():
                    out[f'pl_prec_{c}'] = right_c[c].float() / kept_c[c].float()
    return out
