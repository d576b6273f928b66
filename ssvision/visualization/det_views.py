"""Pictures of semi-supervised detection: what the teacher proposes, what the student
learns from and what it predicts, for the unlabeled images of one batch.

Columns per unlabeled image:

- *weak view + pseudo-boxes*: the teacher's detections on its weak view; kept boxes
  (selector) in their class colour with the score, dropped ones thin and grey;
- *strong view + moved pseudo-boxes*: the student's view with the kept boxes moved by
  ``H_student @ inv(H_teacher)`` (clipped / dropped as in training);
- *student predictions*: the student's detections on the strong view above
  ``score_thr``;
- *true boxes*: the known boxes of the weak view (built-in scenes), when present.
"""

from __future__ import annotations

import torch

from ssvision.structures import DetInstances, transfer_boxes

__all__ = ['render_det_views']


def _draw(ax, img, inst: DetInstances | None, title: str, names, kept=None,
          show_scores: bool = True) -> None:
    import matplotlib.pyplot as plt
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax.set_title(title, fontsize=8)
    ax.axis('off')
    if inst is None:
        return
    cmap = plt.get_cmap('tab10')
    for j in range(len(inst)):
        x1, y1, x2, y2 = inst.bboxes[j].tolist()
        label = int(inst.labels[j])
        on = kept is None or bool(kept[j])
        color = cmap(label % 10) if on else (0.6, 0.6, 0.6, 0.6)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color,
                                   linewidth=1.5 if on else 0.5))
        if on:
            text = names[label] if names and label < len(names) else str(label)
            if show_scores and inst.scores is not None:
                text += f' {float(inst.scores[j]):.2f}'
            ax.text(x1, y1, text, fontsize=5, color='white',
                    bbox=dict(facecolor=color, alpha=0.7, pad=0.5, linewidth=0))


@torch.no_grad()
def render_det_views(model, batch: dict, out_path: str, max_images: int = 4,
                     class_names=None, score_thr: float = 0.3) -> str:
    """Draw the unlabeled images of ``batch`` (a collated training batch) through
    ``model`` (a :class:`~ssvision.models.SemiDetector`) and save a PNG.

    Returns:
        str: ``out_path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = model.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    if 'unsup_teacher' not in inputs:
        raise ValueError('the batch has no unlabeled views (unsup_teacher / unsup_student)')
    weak, strong = inputs['unsup_teacher'][:max_images], inputs['unsup_student'][:max_images]
    t_s, s_s = samples['unsup_teacher'], samples['unsup_student']
    model.eval()
    dets = model.teacher.predict(weak)
    keep = model.selector(dets) if model.selector is not None else [
        torch.zeros(len(d), dtype=torch.bool) for d in dets]
    student = model.student.predict(strong)
    true = t_s.get('true_instances')
    n = len(weak)
    cols = 4 if true is not None else 3
    fig, axes = plt.subplots(n, cols, figsize=(3 * cols, 3 * n), squeeze=False)
    for i in range(n):
        moved, _ = transfer_boxes(dets[i][keep[i]], t_s['homography'][i],
                                  s_s['homography'][i], strong[i].shape[-2:])
        _draw(axes[i][0], weak[i], dets[i], f'weak view: {int(keep[i].sum())} kept / '
              f'{len(dets[i])}', class_names, kept=keep[i])
        _draw(axes[i][1], strong[i], moved, 'strong view + moved pseudo-boxes', class_names)
        pred = student[i][student[i].scores >= score_thr]
        _draw(axes[i][2], strong[i], pred, f'student (score >= {score_thr})', class_names)
        if true is not None:
            _draw(axes[i][3], weak[i], true[i], 'true boxes', class_names, show_scores=False)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
