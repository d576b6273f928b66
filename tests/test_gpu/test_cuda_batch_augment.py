"""Strong views on the GPU give the CPU tensor ops' images for the same draws (-m gpu)."""

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize('name', ['BatchRandAugment', 'BatchColorAugment'])
def test_device_augment_on_cuda_equals_cpu_for_the_same_draws(name):
    # Catches ops that fall back to the CPU, draws made on another device than the images
    # (an error), and CUDA kernels that round differently (up to one gray level allowed:
    # float32 sums run in another order).
    from ssvision.models.data_preprocessors import batch_augment
    aug = getattr(batch_augment, name)()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=g).float()
    draws = aug.draw(64, g, 'cpu')
    cpu = aug(x, draws=draws)
    gpu = aug(x.cuda(), draws={k: v.cuda() for k, v in draws.items()})
    assert gpu.is_cuda
    assert (gpu.cpu() - cpu).abs().max() <= 1.0
    # with a CUDA generator, as the data preprocessor draws them, and no host
    # synchronisation anywhere (a list made into a device tensor, bincount, .item())
    xc = x.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = aug(xc, torch.Generator(device='cuda').manual_seed(1))
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert out.is_cuda and out.shape == x.shape


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_preprocessor_makes_float32_views_under_autocast(dtype):
    # mmengine runs the data preprocessor inside the AMP context; the views must not be
    # made in half precision (an fp16 / bf16 affine grid moves whole-pixel translations
    # by a fraction). Same views with and without autocast.
    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    pre = MODELS.build(dict(type='SemiDataPreprocessor', augment_seed=0, batch_augments=dict(
        unsup_student=dict(type='BatchRandAugment', source='unsup_teacher')))).cuda()
    batch = lambda: {'inputs': {'unsup_teacher': torch.randint(  # noqa: E731
        0, 256, (32, 3, 32, 32), generator=torch.Generator().manual_seed(0),
        dtype=torch.uint8)}}
    plain = pre(batch(), True)['inputs']['unsup_student']
    pre._calls = 0
    with torch.autocast('cuda', dtype=dtype):
        amp = pre(batch(), True)['inputs']['unsup_student']
    assert amp.dtype == torch.float32
    assert torch.equal(plain, amp)
