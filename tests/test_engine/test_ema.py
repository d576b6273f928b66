import pytest
import torch
from torch import nn

from ssvision.engine.hooks import ema_momentum, ema_update


def test_momentum_ramp():
    assert ema_momentum(0, 0.999) == 0.0
    assert ema_momentum(1, 0.999) == pytest.approx(0.5)
    assert ema_momentum(10**6, 0.999) == 0.999
    assert ema_momentum(0, 0.9, ramp=False) == 0.9


def test_ema_equals_closed_form_after_k_steps():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    t0 = teacher[0].weight.detach().clone()
    m, k = 0.9, 6
    students = []
    for _ in range(k):
        with torch.no_grad():
            student[0].weight.add_(torch.randn_like(student[0].weight))
            student[1].running_mean.add_(1.0)
        student[1].num_batches_tracked += 1
        students.append(student[0].weight.detach().clone())
        ema_update(teacher, student, m)
    # closed form: m^k t0 + sum_i (1-m) m^(k-1-i) s_i
    expected = m**k * t0 + sum((1 - m) * m ** (k - 1 - i) * s for i, s in enumerate(students))
    assert torch.allclose(teacher[0].weight, expected, atol=1e-6)
    rm = sum((1 - m) * m ** (k - 1 - i) * (i + 1) for i in range(k))
    assert torch.allclose(teacher[1].running_mean, torch.full((4,), rm), atol=1e-6)
    assert teacher[1].num_batches_tracked.item() == k


def test_ema_ramped_first_step_copies_and_is_in_place():
    student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
    ptr = teacher.weight.data_ptr()
    ema_update(teacher, student, ema_momentum(0, 0.999))
    assert torch.equal(teacher.weight, student.weight)
    assert teacher.weight.data_ptr() == ptr
    assert not teacher.weight.requires_grad or teacher.weight.grad is None
    # the update left no autograd link: a loss on the teacher reaches no student weight
    teacher(torch.ones(1, 2)).sum().backward()
    assert student.weight.grad is None and teacher.weight.grad is not None


def test_copy_buffers():
    student, teacher = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    student.running_mean.fill_(2.0)
    ema_update(teacher, student, 0.5, buffers='copy')
    assert torch.equal(teacher.running_mean, student.running_mean)
    with pytest.raises(ValueError):
        ema_update(teacher, student, 0.5, buffers='nope')


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.gpu)])
def test_fused_update_is_bit_for_bit_the_per_tensor_one(device):
    # The fused multi-tensor update must keep the arithmetic of the per-tensor
    # ``mul_`` / ``add_`` (benchmarks are compared bit for bit across versions). Starts
    # from a teacher that differs from the student in every parameter and BN buffer;
    # catches a lerp (other rounding), a missed buffer, and an integer buffer averaged.
    # On the CPU ``_foreach_*`` falls back to per-tensor ops; on CUDA the fused kernels
    # run (select with -m gpu).
    import copy
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(6, 4)).to(device)
    student[1].running_mean.normal_()
    student[1].num_batches_tracked.fill_(7)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for t in list(teacher.parameters()) + [teacher[1].running_mean, teacher[1].running_var]:
            t.add_(torch.randn_like(t))
    teacher[1].num_batches_tracked.fill_(3)
    ref = copy.deepcopy(teacher)
    with torch.no_grad():
        own = dict(ref.named_parameters())
        for name, p in student.named_parameters():
            own[name].mul_(0.97).add_(p, alpha=1 - 0.97)
        bufs = dict(ref.named_buffers())
        for name, b in student.named_buffers():
            if b.is_floating_point():
                bufs[name].mul_(0.97).add_(b, alpha=1 - 0.97)
            else:
                bufs[name].copy_(b)
    ema_update(teacher, student, 0.97)
    for (name, got), want in zip(teacher.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(got, want), name
    assert teacher[1].num_batches_tracked.item() == 7
