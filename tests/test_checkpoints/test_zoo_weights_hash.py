"""A zoo build is compared with the recorded one by its weights, not its file bytes."""

import hashlib

import torch

from ssvision import zoo
from ssvision.tools import zoo as zoo_tool


def _file_sha(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def test_weights_sha256_follows_the_tensors_not_the_file(tmp_path):
    # Two saves of the same tensors are different files (torch.save writes a fresh
    # serialization id), so a check built on the file's sha256 would call every rebuild
    # different; one on the weights must not. It must still see a one-ulp change, a dtype
    # change of equal values, a renamed key, and not depend on the dict's order.
    torch.manual_seed(0)
    state = {'conv.weight': torch.randn(4, 3, 3, 3), 'bn.running_var': torch.rand(4),
             'bn.num_batches_tracked': torch.tensor(7)}
    a, b = tmp_path / 'a.pth', tmp_path / 'b.pth'
    torch.save(state, a)
    torch.save(dict(reversed(list(state.items()))), b)
    assert _file_sha(a) != _file_sha(b)
    digest = zoo.weights_sha256(torch.load(a, weights_only=True))
    assert digest == zoo.weights_sha256(torch.load(b, weights_only=True))
    nudged = dict(state, **{'conv.weight': state['conv.weight'].clone()})
    nudged['conv.weight'][0, 0, 0, 0] = torch.nextafter(nudged['conv.weight'][0, 0, 0, 0],
                                                        torch.tensor(10.0))
    assert zoo.weights_sha256(nudged) != digest
    assert zoo.weights_sha256(dict(state, **{'bn.running_var': state['bn.running_var']
                                             .double()})) != digest
    renamed = {('b.' + k if k.startswith('bn.') else k): v for k, v in state.items()}
    assert zoo.weights_sha256(renamed) != digest


def test_build_comparison_names_match_and_mismatch(tmp_path):
    state = {'w': torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / 'built.pth'
    torch.save(state, path)
    digest = zoo.weights_sha256(state)
    assert 'bit-identical' in zoo_tool.compare_build(str(path), {'weights_sha256': digest})
    other = zoo_tool.compare_build(str(path), {'weights_sha256': '0' * 64,
                                               'weights_sha256_with': 'torch X, CPU'})
    assert 'differs' in other and 'torch X, CPU' in other and digest in other
    assert 'records no build' in zoo_tool.compare_build(str(path), {})


def test_the_recorded_builds_carry_a_full_digest():
    for e in zoo.entries():
        recorded = (e.get('build') or {}).get('weights_sha256')
        if recorded is not None:
            assert len(recorded) == 64 and int(recorded, 16) >= 0, e['name']
            assert e['build'].get('weights_sha256_with'), e['name']


def test_publish_prints_the_weights_hash_of_what_it_kept(tmp_path, capsys, monkeypatch):
    # catches: a printed hash of the whole training checkpoint (student, selector state)
    # instead of the kept teacher, and a student published under an entry that records a
    # teacher build being called bit-identical to it
    teacher, student = torch.full((2,), 3.0), torch.zeros(2)
    ckpt = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': {'teacher.w': teacher, 'student.w': student,
                               'selector.count': torch.ones(1)}}, ckpt)
    name = 'supervised_tinycnn_mnist5k-4pc'  # a shipped entry that keeps the teacher
    entry = zoo.get(name)
    recorded = dict(entry['build'], weights_sha256=zoo.weights_sha256({'w': teacher}),
                    weights_sha256_with='torch X, CPU')
    monkeypatch.setattr(zoo_tool, '_known_entry', lambda n: dict(entry, build=recorded))
    assert zoo_tool.main(['publish', str(ckpt), '--name', name,
                          '--out-dir', str(tmp_path / 'out')]) == 0
    out = capsys.readouterr().out
    assert f'weights sha256 {recorded["weights_sha256"]}: bit-identical' in out
    assert zoo_tool.main(['publish', str(ckpt), '--name', name, '--keep', 'student',
                          '--out-dir', str(tmp_path / 'out')]) == 0
    out = capsys.readouterr().out
    assert zoo.weights_sha256({'w': student}) in out and 'bit-identical' not in out
