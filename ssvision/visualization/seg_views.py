"""What a semi-supervised segmentation algorithm sees in one training batch.

:func:`render_seg_views` replays the unlabeled half of :meth:`SemiBase.loss
<ssvision.models.algorithms.SemiBase.loss>` on one collated batch, without training,
and draws one row per unlabeled image::

    weak view | pseudo-label | strong view (mixed) | mixed pseudo-label | student | truth

- *weak view*: ``unsup_teacher``, the teacher's input.
- *pseudo-label*: ``argmax`` of ``task.predict(teacher, weak)``; pixels the selector
  drops (``weight == 0``) are greyed out; ``valid_mask`` padding is drawn as ignore.
  (The mixing carries one extra channel through the mixer's ``probs``, the
  index of each pixel's source image, to move padding and truth with the boxes.)
- *strong view*: the first student view (``model.student_views[0]``), after the
  algorithm's own CutMix (:class:`~ssvision.models.algorithms.mixing.UnlabeledCutMix`) when
  ``semi_train_cfg['cutmix_prob'] > 0``; pasted boxes are outlined in white.
- *mixed pseudo-label*: the pseudo-labels and weights mixed alike (what the student is
  trained on; unselected pixels greyed out).
- *student*: ``argmax`` of the student on the strong view, in **eval** mode (running
  BatchNorm statistics, no dropout), so that nothing in the model changes.
- *truth*: ``true_seg`` of the unlabeled images (known for built-in data, used only
  here), mixed with the same boxes; blank where unknown.

Colours (:func:`colorize_labels`): class ``c`` gets ``PALETTE[c]`` (a fixed list of
distinct colours, then golden-angle hues beyond it); ``ignore_index`` and any label
outside ``[0, num_classes)`` are **black** (:data:`IGNORE_COLOR`); greyed-out
(unselected) pixels are the class colour blended 75 % towards grey
:data:`UNSELECTED_GREY`. Neither black nor grey is a class colour.

matplotlib is imported only inside :func:`render_seg_views` and draws with the Agg
canvas directly (no pyplot, the global backend is left alone).
"""

from __future__ import annotations

import colorsys
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np
import torch

from ssvision.models.algorithms.mixing import UnlabeledCutMix

__all__ = ['IGNORE_COLOR', 'PALETTE', 'UNSELECTED_GREY', 'colorize_labels', 'denormalize',
           'palette', 'render_seg_views']

#: Colour of ``ignore_index`` and out-of-range labels.
IGNORE_COLOR = (0, 0, 0)
#: Grey that unselected pixels are blended towards (75 %).
UNSELECTED_GREY = (160, 160, 160)
_UNSELECTED_MIX = 0.75
#: Fixed class colours (tab10 / tab20 without their greys, a dark navy first for class
#: 0, usually the background). Classes beyond it use :func:`palette`'s generated hues.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 58, 95), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (31, 119, 180),
    (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148),
    (247, 182, 210), (219, 219, 141), (158, 218, 229),
)
_GOLDEN = 0.618033988749895


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 class colours: :data:`PALETTE`, then saturated hues
    spaced by the golden angle (never black or grey)."""
    colors = [PALETTE[c] for c in range(min(num_classes, len(PALETTE)))]
    for c in range(len(PALETTE), num_classes):
        h = ((c - len(PALETTE)) * _GOLDEN) % 1.0
        v = 0.95 if c % 2 else 0.7
        r, g, b = colorsys.hsv_to_rgb(h, 0.75, v)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.asarray(colors, dtype=np.uint8).reshape(-1, 3)


def colorize_labels(label_map, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Colour image of a label map.

    Args:
        label_map (np.ndarray | torch.Tensor): ``(H, W)`` integer labels.
        num_classes (int): number of classes ``K``; class ``c`` in ``[0, K)`` gets
            ``palette(K)[c]``.
        ignore_index (int): label drawn in :data:`IGNORE_COLOR` (black). Any other label
            outside ``[0, K)`` is black too.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    if isinstance(label_map, torch.Tensor):
        label_map = label_map.detach().cpu().numpy()
    labels = np.asarray(label_map)
    if labels.ndim != 2:
        raise ValueError(f'label_map must be (H, W), got shape {labels.shape}')
    labels = labels.astype(np.int64)
    colors = palette(int(num_classes))
    out = np.empty(labels.shape + (3,), dtype=np.uint8)
    out[:] = IGNORE_COLOR
    known = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    out[known] = colors[labels[known]]
    return out


def denormalize(img, mean, std) -> np.ndarray:
    """Undo ``x = (img - mean) / std``: ``(C, H, W)`` float -> ``(H, W, 3)`` uint8.

    Args:
        img (torch.Tensor | np.ndarray): ``(C, H, W)`` normalised image, ``C`` = 1 or 3
            (one channel is repeated to three).
        mean, std (Sequence[float] | torch.Tensor): per channel (or one value), in
            0..255 units, as in ``SemiDataPreprocessor``.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8, clipped to 0..255.
    """
    if isinstance(img, torch.Tensor):
        img = img.detach().float().cpu().numpy()
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3:
        raise ValueError(f'img must be (C, H, W), got shape {img.shape}')

    def vec(v):
        if isinstance(v, torch.Tensor):
            v = v.detach().float().cpu().numpy()
        return np.asarray(v, dtype=np.float32).reshape(-1, 1, 1)

    out = img * vec(std) + vec(mean)
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def _grey_out(rgb: np.ndarray, unselected: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    grey = np.asarray(UNSELECTED_GREY, dtype=np.float32)
    mixed = (1 - _UNSELECTED_MIX) * rgb[unselected].astype(np.float32) + _UNSELECTED_MIX * grey
    out[unselected] = np.rint(mixed).astype(np.uint8)
    return out


def _box_outline(pasted: np.ndarray) -> np.ndarray:
    """Pixels on the border of the ``pasted`` region (4-neighbourhood)."""
    p = np.pad(pasted, 1, mode='edge')
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return pasted & ~inner


def _module_modes(model: torch.nn.Module) -> list[tuple[torch.nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


@torch.no_grad()
def _compute(model, batch: dict, max_images: int) -> dict:
    """Everything the figure shows, as CPU tensors (model in eval mode, no grad)."""
    if getattr(model, 'selector', None) is None:
        raise ValueError(f'{type(model).__name__} has no selector: no pseudo-labels to show')
    data = model.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data.get('data_samples', {}) or {}
    if not isinstance(inputs, dict) or 'unsup_teacher' not in inputs:
        raise KeyError("the batch has no 'unsup_teacher' view (unlabeled_ratio=0?)")
    strong_name = model.student_views[0]
    if strong_name not in inputs:
        raise KeyError(f'the batch has no {strong_name!r} view')
    meta = samples.get('unsup_teacher', {}) or {}

    weak = inputs['unsup_teacher']
    probs = model.task.predict(model.teacher, weak)
    if probs.dim() != 4:
        raise ValueError(f'expected dense predictions (N, K, H, W), got {tuple(probs.shape)}')
    labels, weight = model.selector(probs, sample_idx=meta.get('sample_idx'))
    valid = meta.get('valid_mask')
    if isinstance(valid, torch.Tensor) and valid.shape == weight.shape:
        weight = weight * valid.to(weight.dtype)
    else:
        valid = None
    n, num_classes, h, w = probs.shape
    # source image of every pixel after CutMix, carried as one extra channel of probs
    src = torch.arange(n, device=probs.device, dtype=probs.dtype).view(n, 1, 1, 1)
    src = src.expand(n, 1, h, w)
    mixed_inputs, m_labels, m_weight = inputs, labels, weight
    m_src = src[:, 0]
    if model.semi_train_cfg.get('cutmix_prob', 0) > 0:
        mixer = model.mixer or UnlabeledCutMix(model.semi_train_cfg['cutmix_prob'])
        mixed_inputs, m_probs, m_labels, m_weight = mixer(
            inputs, model.student_views, torch.cat([probs, src], dim=1), labels, weight)
        m_src = m_probs[:, num_classes]
    strong = mixed_inputs[strong_name]
    student = model.task.predict(model.student, strong).argmax(dim=1)

    idx = torch.arange(n, device=probs.device)
    source = m_src.round().long().clamp(0, n - 1)
    rows = torch.arange(h, device=probs.device)[:, None]
    cols = torch.arange(w, device=probs.device)[None, :]
    true = meta.get('true_seg')
    m_true = None
    if isinstance(true, torch.Tensor) and true.shape == labels.shape:
        m_true = true[source, rows, cols]
    # padding (valid_mask False) is drawn as ignore in the label maps
    ignore = getattr(model.task, 'ignore_index', 255)
    if valid is not None:
        labels = labels.masked_fill(~valid.bool(), ignore)
        m_labels = m_labels.masked_fill(~valid.bool()[source, rows, cols], ignore)
    k = min(int(max_images), n)
    sample_idx = meta.get('sample_idx')
    out = dict(
        weak=weak[:k], strong=strong[:k], labels=labels[:k], weight=weight[:k],
        m_labels=m_labels[:k], m_weight=m_weight[:k], student=student[:k],
        pasted=(source != idx.view(n, 1, 1))[:k], true=m_true[:k] if m_true is not None
        else None, num_classes=num_classes, strong_name=strong_name,
        sample_idx=sample_idx[:k] if isinstance(sample_idx, torch.Tensor) else None)
    return {key: v.cpu() if isinstance(v, torch.Tensor) else v for key, v in out.items()}


def render_seg_views(model, batch: dict, out_png: str, max_images: int = 4,
                     class_names: Sequence[str] | None = None, seed: int | None = 0,
                     dpi: int = 100) -> str:
    """Draws the views, pseudo-labels and predictions of one batch into a PNG.

    See the module docstring for the columns. The model is run in eval mode under
    ``torch.no_grad()`` and every module's train/eval flag is restored afterwards, so
    nothing in it changes (selector statistics included: selectors update them only in
    training mode). CutMix draws its boxes from the global torch RNG inside
    ``torch.random.fork_rng``, seeded with ``seed``, so the caller's RNG state is left
    alone and the picture is reproducible (``seed=None``: unseeded).

    Args:
        model (SemiBase): a segmentation algorithm (``SegmentationTask``) with a selector.
        batch (dict): one collated training batch (the train dataloader's output, before
            the data preprocessor) holding ``unsup_teacher`` and the student view(s).
        out_png (str): output path; parent folders are created.
        max_images (int): rows (unlabeled images) drawn at most. Default 4.
        class_names (Sequence[str] | None): legend names, indexed by class.
        seed (int | None): seed of the CutMix draw. Default 0.
        dpi (int): resolution. Default 100.

    Returns:
        str: ``out_png``.
    """
    if max_images < 1:
        raise ValueError(f'max_images must be >= 1, got {max_images}')
    modes = _module_modes(model)
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            views = _compute(model, batch, max_images)
    finally:
        for module, mode in modes:
            module.training = mode
    mean = model.data_preprocessor.mean
    std = model.data_preprocessor.std
    ignore_index = getattr(model.task, 'ignore_index', 255)
    fig = _figure(views, mean, std, ignore_index, class_names,
                  mixed=model.semi_train_cfg.get('cutmix_prob', 0) > 0, dpi=dpi)
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=dpi, bbox_inches='tight')
    return out_png


def _figure(views: dict, mean, std, ignore_index: int, class_names, mixed: bool, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    k, num_classes = views['weak'].shape[0], views['num_classes']
    strong = views['strong_name'] + (' + CutMix' if mixed else '')
    titles = ('weak view (teacher)', 'pseudo-label\n(grey: not selected)',
              f'strong view\n({strong})', 'mixed pseudo-label' if mixed else 'pseudo-label',
              'student prediction\n(eval mode)', 'true mask')
    height = 2.4 * k + 1.2
    fig = Figure(figsize=(2.4 * len(titles), height), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(k, len(titles), squeeze=False))

    def color(lbl):
        return colorize_labels(lbl, num_classes, ignore_index)

    for i in range(k):
        strong_img = denormalize(views['strong'][i], mean, std)
        pasted = views['pasted'][i].numpy()
        strong_img[_box_outline(pasted)] = (255, 255, 255)
        # ignore / padding stays black; other unselected pixels are greyed out
        unsel = views['weight'][i].numpy() <= 0
        m_unsel = views['m_weight'][i].numpy() <= 0
        unsel_shown = unsel & (views['labels'][i].numpy() != ignore_index)
        m_unsel_shown = m_unsel & (views['m_labels'][i].numpy() != ignore_index)
        panels = [
            denormalize(views['weak'][i], mean, std),
            _grey_out(color(views['labels'][i]), unsel_shown),
            strong_img,
            _grey_out(color(views['m_labels'][i]), m_unsel_shown),
            color(views['student'][i]),
            color(views['true'][i]) if views['true'] is not None else None,
        ]
        if panels[-1] is not None and (views['true'][i] == ignore_index).all():
            panels[-1] = None
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.text(0.5, 0.5, 'unknown', ha='center', va='center',
                        transform=ax.transAxes, color='gray')
                for spine in ax.spines.values():
                    spine.set_visible(False)
            else:
                ax.imshow(panel, interpolation='nearest')
            if i == 0:
                ax.set_title(titles[j], fontsize='small')
        shown = views['labels'][i].numpy() != ignore_index  # kept share of non-padding
        kept = float((~unsel & shown).sum()) / max(int(shown.sum()), 1)
        name = f'#{i}'
        if views['sample_idx'] is not None:
            name += f' (idx {int(views["sample_idx"][i])})'
        axes[i, 0].set_ylabel(f'{name}\nkept {kept:.0%}', fontsize='small')

    colors = palette(num_classes) / 255.0
    handles = []
    for c in range(num_classes):
        label = str(c)
        if class_names is not None and c < len(class_names):
            label = f'{c}: {class_names[c]}'
        handles.append(Patch(facecolor=colors[c], edgecolor='none', label=label))
    handles.append(Patch(facecolor=np.asarray(IGNORE_COLOR) / 255.0,
                         label='ignore / padding'))
    handles.append(Patch(facecolor=np.asarray(UNSELECTED_GREY) / 255.0,
                         label='not selected (weight 0)'))
    if mixed:
        handles.append(Patch(facecolor='white', edgecolor='black', label='CutMix box'))
    ncol = min(len(handles), 7)
    fig.legend(handles=handles, loc='lower center', ncol=ncol, fontsize='small',
               frameon=False)
    legend_in = 0.25 * -(-len(handles) // ncol) + 0.15
    fig.tight_layout(rect=(0, legend_in / height, 1, 1))
    return fig
