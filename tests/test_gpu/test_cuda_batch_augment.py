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
    # and with a CUDA generator, as the data preprocessor draws them
    out = aug(x.cuda(), torch.Generator(device='cuda').manual_seed(1))
    assert out.is_cuda and out.shape == x.shape
