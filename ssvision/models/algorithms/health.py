"""Pseudo-label health figures of one batch, as pure functions."""

from __future__ import annotations

import torch

from ssvision.structures import box_precision


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


@torch.no_grad()
def box_health(dets, keep, cls, reg, num_classes: int | None, ignore=None, true=None,
               extra: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Pseudo-box figures of one batch: ``pb_per_img``, ``pb_n_<c>`` (the boxes ``cls``
    the student trains on, in its view), ``cand_per_img`` (teacher detections ``dets``),
    ``pb_reg_frac`` (share in ``reg``, trusted for regression), ``teacher_conf`` (mean
    detection score), ``pb_ignore_per_img`` (with ``ignore`` regions) and, when the true
    boxes are known, ``pb_prec`` / ``pb_recall`` of the kept boxes ``dets[keep]`` (in the
    teacher's view); plus the selector's ``extra`` figures."""
    k = num_classes or 0
    dev = dets[0].bboxes.device if len(dets) else torch.device('cpu')
    n = max(len(dets), 1)
    kept_labels = [p.labels for p in cls]
    counts = torch.bincount(torch.cat(kept_labels), minlength=k) if kept_labels else \
        torch.zeros(k, dtype=torch.long)
    n_kept = sum(len(p) for p in cls)
    log = {'pb_per_img': torch.tensor(n_kept / n, device=dev),
           'cand_per_img': torch.tensor(sum(len(d) for d in dets) / n, device=dev),
           'pb_reg_frac': torch.tensor(sum(len(p) for p in reg) / max(n_kept, 1), device=dev),
           'teacher_conf': torch.cat([d.scores for d in dets]).mean() if any(
               len(d) for d in dets) else torch.tensor(0.0, device=dev)}
    for c in range(k):
        log[f'pb_n_{c}'] = counts[c].float()
    if ignore is not None:
        log['pb_ignore_per_img'] = torch.tensor(sum(len(b) for b in ignore) / n, device=dev)
    if true is not None and any(len(t) for t in true):
        tp = npred = ntrue = 0
        for d, m, t in zip(dets, keep, true):
            a, b = box_precision(d[m], t.to(d.bboxes.device))
            tp, npred, ntrue = tp + a, npred + b, ntrue + len(t)
        if npred:
            log['pb_prec'] = torch.tensor(tp / npred, device=dev)
        log['pb_recall'] = torch.tensor(tp / max(ntrue, 1), device=dev)
    for key, value in (extra or {}).items():
        log[key] = torch.as_tensor(value, dtype=torch.float32)
    return log
