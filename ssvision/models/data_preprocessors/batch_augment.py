"""Strong views made on the device, a whole batch at a time, each sample its own draw.

The CPU pipeline makes every strong view with a per-sample RandAugment in a DataLoader
worker; at mu = 7 a fast GPU waits on those workers. :class:`BatchRandAugment`
(classification) and :class:`BatchColorAugment` (the photometric strong view of
segmentation and detection, whose geometry stays with the weak view) make the same views
from the weak ones on the device, inside the data preprocessor
(:class:`~.semi_preprocessor.SemiDataPreprocessor`'s ``batch_augments``), after the
batch has been moved there.

Why our own tensor ops, not torchvision.transforms.v2 or kornia: v2 draws one setting per
call, i.e. one per batch, so every image of a batch would get the same two ops; kornia's
RandAugment draws per batch too and is an extra dependency. Here every op is computed for
the whole batch and each sample takes the result of the op it drew (``torch.where``), so
there is no per-sample Python loop, no host synchronisation and a fixed launch count
(about 30 kernels per op slot) whatever the batch size.

The law matches :class:`~ssvision.datasets.transforms.RandAugment` (the CPU strong view):
``num_ops`` ops per sample, each drawn uniformly with replacement from the same op set,
at the fixed strength ``s = magnitude / max_magnitude`` of the same ranges, a signed op
with a random sign; then Cutout with the same side and a uniform centre; the same fill.
Values are rounded to integers after every op, as the uint8 CPU pipeline does. Two ops
follow their textbook definition rather than albumentations' variant: AutoContrast is
the per-channel min / max stretch (albumentations' default maps through the histogram),
and affine ops sample bilinearly with ``grid_sample`` (rotation and shear agree with the
CPU op to 0.1 gray levels on real photos, translations are whole pixels as there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssvision.datasets.transforms.augment import (
    _MAX_ENHANCE,
    _MAX_ROTATE,
    _MAX_SHARPEN,
    _MAX_SHEAR,
    _MAX_TRANSLATE,
    RANDAUGMENT_OPS,
)
from ssvision.registry import MODELS

__all__ = ['BatchColorAugment', 'BatchRandAugment']

_GEOMETRIC = ('Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY')
#: ITU-R 601 luma weights (cv2's RGB2GRAY, which the CPU ops use)
_LUMA = (0.299, 0.587, 0.114)


def _gray(img: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` luma of ``(N, C, H, W)`` (C = 1 or 3). Python-float weights: a
    small tensor built from a list would be a host-to-device copy, which synchronises."""
    if img.shape[1] == 1:
        return img
    r, g, b = _LUMA
    return img[:, 0:1] * r + img[:, 1:2] * g + img[:, 2:3] * b


def _brightness(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale by ``factor`` (per sample ``(N, 1, 1, 1)``), as albumentations' torchvision
    brightness."""
    return (img * factor).clamp(0, 255)


def _contrast(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma by ``factor``."""
    mean = _gray(img).mean(dim=(1, 2, 3), keepdim=True)
    return (mean + factor * (img - mean)).clamp(0, 255)


def _saturation(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the pixel's luma by ``factor`` (identity on gray images)."""
    g = _gray(img)
    return (g + factor * (img - g)).clamp(0, 255)


def _autocontrast(img: torch.Tensor) -> torch.Tensor:
    lo = img.amin(dim=(2, 3), keepdim=True)
    hi = img.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    stretched = (img - lo) * (255.0 / span.clamp_min(1e-6))
    return torch.where(span > 0, stretched, img)


def _equalize(img: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation with OpenCV's ``equalizeHist`` lookup table:
    ``round((cdf(v) - cdf_min) * 255 / (pixels - cdf_min))``; a constant channel stays."""
    n, c, h, w = img.shape
    flat = img.reshape(n * c, h * w).round().clamp(0, 255).long()
    offset = torch.arange(n * c, device=img.device).view(-1, 1) * 256
    # scatter_add, not bincount: CUDA's bincount reads the largest value back to size
    # its output (a host synchronisation)
    hist = torch.zeros(n * c * 256, dtype=torch.long, device=img.device).scatter_add_(
        0, (flat + offset).flatten(), torch.ones_like(flat).flatten()).view(n * c, 256)
    cdf = hist.cumsum(dim=1).float()
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float('inf'))).amin(dim=1,
                                                                                  keepdim=True)
    total = float(h * w)
    denom = total - cdf_min
    lut = ((cdf - cdf_min) * 255.0 / denom.clamp_min(1.0)).round().clamp(0, 255)
    out = lut.gather(1, flat).view(n, c, h, w)
    return torch.where((denom > 0).view(n, c, 1, 1), out, img)


def _sharpen(img: torch.Tensor, alpha: float) -> torch.Tensor:
    """albumentations' ``Sharpen(alpha, lightness=1)``: the 3x3 kernel
    ``(1 - alpha) * identity + alpha * [[-1]*3, [-1, 9, -1], [-1]*3]``, reflect-101 border."""
    k = torch.full((3, 3), -alpha, dtype=img.dtype, device=img.device)
    k[1, 1] = 1.0 - alpha + 9.0 * alpha
    c = img.shape[1]
    padded = F.pad(img, (1, 1, 1, 1), mode='reflect')
    return F.conv2d(padded, k.expand(c, 1, 3, 3), groups=c)


def _affine_thetas(names: Sequence[str], op: torch.Tensor, sign: torch.Tensor, s: float,
                   h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, ``grid_sample``'s ``(2, 3)`` theta for the geometric op it drew
    (identity otherwise), and whether it drew one.

    Each sample draws one op per slot, so the output -> input map ``grid_sample`` wants
    is the op with its parameter negated (no matrix inverse, hence no host sync); it is
    built in centred pixel coordinates and moved to normalised ones, ``S^-1 M S``.
    """
    n = op.shape[0]
    dev = sign.device
    inv = torch.eye(3, device=dev).repeat(n, 1, 1)
    is_geo = torch.zeros(n, dtype=torch.bool, device=dev)
    # the inverse map's parameter; rotation and shear angles follow albumentations'
    # image-axis convention (y down), which flips their sign once more
    v = -sign * s
    angle = sign * s
    for j, name in enumerate(names):
        if name not in _GEOMETRIC:
            continue
        sel = op == j
        is_geo = is_geo | sel
        m = torch.eye(3, device=dev).repeat(n, 1, 1)
        if name == 'Rotate':
            a = torch.deg2rad(angle * _MAX_ROTATE)
            m[:, 0, 0], m[:, 0, 1] = torch.cos(a), -torch.sin(a)
            m[:, 1, 0], m[:, 1, 1] = torch.sin(a), torch.cos(a)
        elif name == 'ShearX':
            m[:, 0, 1] = torch.tan(torch.deg2rad(angle * _MAX_SHEAR))
        elif name == 'ShearY':
            m[:, 1, 0] = torch.tan(torch.deg2rad(angle * _MAX_SHEAR))
        elif name == 'TranslateX':  # whole pixels, as albumentations' Affine shifts
            m[:, 0, 2] = torch.round(v * _MAX_TRANSLATE * w)
        else:  # TranslateY
            m[:, 1, 2] = torch.round(v * _MAX_TRANSLATE * h)
        inv = torch.where(sel.view(-1, 1, 1), m, inv)
    # S^-1 M S with S = diag(w / 2, h / 2, 1): element (i, j) scales by s_j / s_i
    scale = ((1.0, h / w, 2.0 / w), (w / h, 1.0, 2.0 / h))
    theta = torch.stack([torch.stack([inv[:, i, j] * scale[i][j] for j in range(3)], dim=1)
                         for i in range(2)], dim=1)
    return theta, is_geo


@MODELS.register_module()
class BatchRandAugment:
    """RandAugment (fixed magnitude, random sign) + Cutout on a batch, per sample.

    Takes and returns float ``(N, C, H, W)`` images in 0..255 (C = 1 or 3) on any
    device; see the module docstring for the law and what differs from the CPU op.

    Args:
        num_ops (int): ops per sample. Default 2.
        magnitude (float): strength in ``[0, max_magnitude]``. Default 10.
        max_magnitude (float): full strength. Default 10.
        ops (Sequence[str], optional): op names (those of the CPU ``RandAugment``);
            default all.
        cutout_ratio (float, optional): Cutout side as a fraction of ``min(H, W)``;
            None: no Cutout. Default 0.5.
        fill (float): fill of geometric ops and Cutout. Default 128.
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 10, max_magnitude: float = 10,
                 ops: Sequence[str] | None = None, cutout_ratio: float | None = 0.5,
                 fill: float = 128) -> None:
        if num_ops < 0:
            raise ValueError(f'num_ops must be >= 0, got {num_ops}')
        if max_magnitude <= 0 or not 0 <= magnitude <= max_magnitude:
            raise ValueError('need 0 <= magnitude <= max_magnitude, max_magnitude > 0; got '
                             f'magnitude={magnitude}, max_magnitude={max_magnitude}')
        names = tuple(ops) if ops is not None else tuple(RANDAUGMENT_OPS)
        unknown = [o for o in names if o not in RANDAUGMENT_OPS]
        if unknown or not names:
            raise ValueError(f'unknown or empty ops {unknown}; choose from '
                             f'{list(RANDAUGMENT_OPS)}')
        if cutout_ratio is not None and not 0.0 <= cutout_ratio <= 1.0:
            raise ValueError(f'cutout_ratio must be in [0, 1] or None, got {cutout_ratio}')
        self.num_ops, self.names = int(num_ops), names
        self.strength = float(magnitude) / float(max_magnitude)
        self.cutout_ratio, self.fill = cutout_ratio, float(fill)

    def draw(self, n: int, generator: torch.Generator | None, device) -> dict[str, torch.Tensor]:
        """The random choices for ``n`` samples: ``op`` ``(num_ops, n)`` indices into
        :attr:`names`, ``sign`` ``(num_ops, n)`` of +-1 (signed ops), ``centre``
        ``(n, 2)`` Cutout centres as fractions of ``(H, W)``."""
        kw = dict(generator=generator, device=device)
        op = torch.randint(len(self.names), (self.num_ops, n), **kw)
        sign = torch.randint(2, (self.num_ops, n), **kw).float() * 2 - 1
        centre = torch.rand(n, 2, **kw)
        return dict(op=op, sign=sign, centre=centre)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None,
                 draws: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if img.dim() != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f'expected (N, 1 or 3, H, W) images, got {tuple(img.shape)}')
        draws = draws or self.draw(img.shape[0], generator, img.device)
        img = img.float()
        for k in range(self.num_ops):
            img = self._step(img, draws['op'][k], draws['sign'][k])
        if self.cutout_ratio is not None:
            img = self._cutout(img, draws['centre'])
        return img

    # ------------------------------------------------------------------ one op slot
    def _step(self, img: torch.Tensor, op: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        s = self.strength
        out = img
        if any(name in _GEOMETRIC for name in self.names):
            theta, is_geo = _affine_thetas(self.names, op, sign, s, h, w)
            grid = F.affine_grid(theta, list(img.shape), align_corners=False)
            moved = F.grid_sample(img - self.fill, grid, mode='bilinear', padding_mode='zeros',
                                  align_corners=False) + self.fill
            out = torch.where(is_geo.view(-1, 1, 1, 1), moved, out)
        factor = (1.0 + _MAX_ENHANCE * s * sign).view(-1, 1, 1, 1)
        for j, name in enumerate(self.names):
            if name in _GEOMETRIC or name == 'Identity':
                continue
            result = self._photometric(name, img, factor, s)
            if result is not None:
                out = torch.where((op == j).view(-1, 1, 1, 1), result, out)
        return out.round().clamp(0, 255)

    @staticmethod
    def _photometric(name: str, img: torch.Tensor, factor: torch.Tensor,
                     s: float) -> torch.Tensor | None:
        """The op on the whole batch (None: identity at this strength)."""
        if name == 'AutoContrast':
            return _autocontrast(img)
        if name == 'Equalize':
            return _equalize(img)
        if name == 'Solarize':
            threshold = 1.0 - s
            if threshold >= 1.0:
                return None
            return torch.where(img >= threshold * 255.0, 255.0 - img, img)
        if name == 'Posterize':
            bits = 8 - int(round(4 * s))
            if bits >= 8:
                return None
            step = float(2 ** (8 - bits))
            return torch.floor(img / step) * step
        if name == 'Color':
            return None if img.shape[1] == 1 else _saturation(img, factor)
        if name == 'Contrast':
            return _contrast(img, factor)
        if name == 'Brightness':
            return _brightness(img, factor)
        if name == 'Sharpness':
            return _sharpen(img, _MAX_SHARPEN * s).clamp(0, 255)
        raise KeyError(name)  # pragma: no cover - names are validated in __init__

    def _cutout(self, img: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """One ``side x side`` square per sample at an integer centre drawn uniformly over
        the image (it may stick out), as the CPU ``cutout``."""
        n, _, h, w = img.shape
        side = int(round(self.cutout_ratio * min(h, w)))
        if side <= 0:
            return img
        cy = (centre[:, 0] * h).floor().clamp(max=h - 1)
        cx = (centre[:, 1] * w).floor().clamp(max=w - 1)
        y0, x0 = cy - side // 2, cx - side // 2
        ys = torch.arange(h, device=img.device).view(1, h, 1)
        xs = torch.arange(w, device=img.device).view(1, 1, w)
        hole = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + side).view(-1, 1, 1))
                & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + side).view(-1, 1, 1)))
        return torch.where(hole.unsqueeze(1), torch.full_like(img, self.fill), img)


def _rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in [0, 1] -> HSV, hue in [0, 1)."""
    r, g, b = img.unbind(dim=1)
    top, _ = img.max(dim=1)
    low, _ = img.min(dim=1)
    span = top - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    hue = torch.where(top == r, (g - b) / safe,
                      torch.where(top == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = torch.where(span > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    sat = torch.where(top > 0, span / torch.where(top > 0, top, torch.ones_like(top)),
                      torch.zeros_like(top))
    return torch.stack([hue, sat, top], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_rgb_to_hsv`."""
    h, s, v = hsv.unbind(dim=1)
    # the standard closed form: channel n = v - v s max(0, min(k, 4 - k, 1)),
    # k = (n' + 6 h) mod 6 with n' = 5, 3, 1 for R, G, B
    offsets = 5.0 - 2.0 * torch.arange(3, device=hsv.device, dtype=hsv.dtype)  # 5, 3, 1
    shift = (offsets.view(1, 3, 1, 1) + 6.0 * h.unsqueeze(1)) % 6.0
    weight = torch.clamp(torch.minimum(shift, 4.0 - shift), 0.0, 1.0)
    return v.unsqueeze(1) - v.unsqueeze(1) * s.unsqueeze(1) * weight


def _gaussian_blur(img: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Per-sample Gaussian blur: sample ``i`` with ``sigma[i]`` and the kernel radius
    ``int(3.5 * sigma)`` of the CPU op (``A.GaussianBlur``), separable, reflect-101
    border; one kernel width for the batch (``max_sigma``'s), zero beyond each radius."""
    n, c, h, w = img.shape
    radius = torch.floor(3.5 * sigma).long().clamp_min(1)
    r = max(1, int(3.5 * max_sigma))
    x = torch.arange(-r, r + 1, device=img.device, dtype=img.dtype).view(1, -1)
    kernel = torch.exp(-x ** 2 / (2 * sigma.view(-1, 1) ** 2))
    kernel = torch.where(x.abs() <= radius.view(-1, 1), kernel, torch.zeros_like(kernel))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(c, dim=0)  # (n * c, 2r + 1)
    flat = img.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode='reflect'), kernel.view(n * c, 1, 1, -1),
                    groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode='reflect'), kernel.view(n * c, 1, -1, 1),
                    groups=n * c)
    return flat.view(n, c, h, w)


@MODELS.register_module()
class BatchColorAugment:
    """The photometric strong view of :class:`~ssvision.datasets.transforms.SegStrongAugment`
    (and the detection configs' ``PhotometricAugment``) on a batch, per sample.

    Each sample draws, as the CPU op does: colour jitter with probability
    ``color_jitter_prob`` (brightness, contrast and saturation factors
    ``U(max(0, 1 - v), 1 + v)``, a hue shift ``U(-hue, hue)`` of the full circle, the four
    in a random order), then grayscale with probability ``grayscale_prob`` (3 channels
    kept), then a Gaussian blur with probability ``blur_prob`` and ``sigma ~
    U(blur_sigma)`` (kernel radius ``int(3.5 sigma)``, reflect-101 border). Pixels never
    move, so masks, boxes and recorded geometry stay valid. Float ``(N, 3, H, W)`` images
    in 0..255 in and out, rounded to integers after each op as the uint8 CPU pipeline.

    Args: those of ``SegStrongAugment`` (without ``seed``: the generator comes from the
    data preprocessor).
    """

    def __init__(self, color_jitter_prob: float = 0.8, grayscale_prob: float = 0.2,
                 blur_prob: float = 0.5, brightness: float = 0.5, contrast: float = 0.5,
                 saturation: float = 0.5, hue: float = 0.25,
                 blur_sigma: Sequence[float] = (0.1, 2.0)) -> None:
        from ssvision.datasets.transforms.seg_augment import check_photometric_args
        blur_sigma = check_photometric_args(color_jitter_prob, grayscale_prob, blur_prob,
                                            brightness, contrast, saturation, hue, blur_sigma)
        self.probs = (float(color_jitter_prob), float(grayscale_prob), float(blur_prob))
        self.ranges = ((max(0.0, 1 - brightness), 1 + brightness),
                       (max(0.0, 1 - contrast), 1 + contrast),
                       (max(0.0, 1 - saturation), 1 + saturation), (-hue, hue))
        self.blur_sigma = blur_sigma

    def draw(self, n: int, generator: torch.Generator | None, device) -> dict[str, torch.Tensor]:
        """Per sample: ``apply`` ``(n, 3)`` (jitter, gray, blur), ``factors`` ``(n, 4)``
        (brightness, contrast, saturation, hue), ``order`` ``(n, 4)`` (a permutation of
        the four jitter ops), ``sigma`` ``(n,)``."""
        kw = dict(generator=generator, device=device)
        u = torch.rand(n, 3, **kw)
        apply = torch.stack([u[:, i] < p for i, p in enumerate(self.probs)], dim=1)
        u = torch.rand(n, 4, **kw)
        factors = torch.stack([lo + (hi - lo) * u[:, i]
                               for i, (lo, hi) in enumerate(self.ranges)], dim=1)
        order = torch.rand(n, 4, **kw).argsort(dim=1)
        low, high = self.blur_sigma
        sigma = low + (high - low) * torch.rand(n, **kw)
        return dict(apply=apply, factors=factors, order=order, sigma=sigma)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None,
                 draws: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'BatchColorAugment needs (N, 3, H, W) images, got '
                             f'{tuple(img.shape)}')
        n = img.shape[0]
        d = draws or self.draw(n, generator, img.device)
        img = img.float()
        jitter = d['apply'][:, 0].view(-1, 1, 1, 1)
        f = d['factors']
        for slot in range(4):
            out = img
            which = d['order'][:, slot]
            for op in range(4):
                result = self._jitter_op(op, img, f[:, op].view(-1, 1, 1, 1))
                out = torch.where((which == op).view(-1, 1, 1, 1), result, out)
            img = torch.where(jitter, out.round().clamp(0, 255), img)
        gray = _gray(img).expand_as(img).round()
        img = torch.where(d['apply'][:, 1].view(-1, 1, 1, 1), gray, img)
        blurred = _gaussian_blur(img, d['sigma'], self.blur_sigma[1]).round().clamp(0, 255)
        return torch.where(d['apply'][:, 2].view(-1, 1, 1, 1), blurred, img)

    @staticmethod
    def _jitter_op(op: int, img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        if op < 3:  # brightness, contrast, saturation: RandAugment's ops at a drawn factor
            return (_brightness, _contrast, _saturation)[op](img, factor)
        hsv = _rgb_to_hsv(img / 255.0)  # hue: rotate by factor of the full circle
        hsv = torch.cat([(hsv[:, :1] + factor) % 1.0, hsv[:, 1:]], dim=1)
        return _hsv_to_rgb(hsv) * 255.0
