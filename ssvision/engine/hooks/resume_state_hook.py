"""Makes checkpoints exact for resuming and loadable with ``weights_only=True``."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from ssvision.engine.mmengine_compat import built_loop
from ssvision.engine.rng import get_rng_states, set_rng_states
from ssvision.registry import HOOKS

_HISTORY_TAG = '__ssvision_history_buffer__'


def to_plain(obj: Any) -> Any:
    """Recursively replace numpy values by tensors / python scalars.

    ``torch.load(weights_only=True)`` accepts tensors, python scalars, strings and
    dicts / lists / tuples of them, but not numpy objects.
    """
    if isinstance(obj, (dict, OrderedDict)):
        return type(obj)((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _encode_message_hub(state: dict) -> dict:
    scalars = {}
    for key, buf in state.get('log_scalars', {}).items():
        if isinstance(buf, HistoryBuffer):
            log, count = buf.data
            scalars[key] = {_HISTORY_TAG: True, 'log': torch.from_numpy(np.asarray(log)),
                            'count': torch.from_numpy(np.asarray(count)),
                            'max_length': int(buf.max_length)}
    out = dict(state)
    out['log_scalars'] = scalars
    out['runtime_info'] = to_plain(dict(state.get('runtime_info', {})))
    out['resumed_keys'] = dict(state.get('resumed_keys', {}))
    return out


def _decode_message_hub(state: dict) -> dict:
    scalars = OrderedDict()
    for key, val in state.get('log_scalars', {}).items():
        if isinstance(val, dict) and val.get(_HISTORY_TAG):
            # mmengine may load checkpoints onto the GPU (map_location='cuda')
            scalars[key] = HistoryBuffer(val['log'].cpu().numpy(), val['count'].cpu().numpy(),
                                         max_length=val['max_length'])
        else:
            scalars[key] = val
    out = dict(state)
    out['log_scalars'] = scalars
    return out


@HOOKS.register_module()
class ResumeStateHook(Hook):
    """Saves what an exact resume needs and keeps checkpoints ``weights_only``-safe.

    On save it adds ``checkpoint['ssvision'] = {'rng': ..., 'sampler': ...}`` (python,
    numpy, torch and CUDA RNG states; the sampler's seed and next position) and
    rewrites mmengine's message-hub history (``HistoryBuffer`` objects, numpy arrays)
    as tensors and dicts, so ``torch.load(path, weights_only=True)`` reads the file
    without allow-listing any class. On load it turns them back and restores the RNG
    states at the start of training when the run resumes (a checkpoint loaded only
    for fine-tuning, ``load_from``, leaves the RNG alone). A resumed run whose
    ``iter * batch_size`` differs from the saved sampler position (the batch size or
    ``mu`` changed) is refused: its data stream would not continue the saved one. The
    model's state dict already holds the teacher and the selectors' buffers; the
    optimizer and schedulers are saved by mmengine.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending_rng: dict | None = None
        self._pending_sampler: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = _encode_message_hub(checkpoint['message_hub'])
        if 'meta' in checkpoint:
            checkpoint['meta'] = to_plain(checkpoint['meta'])
        state: dict[str, Any] = {'rng': get_rng_states()}
        loader = getattr(built_loop(runner, 'train'), 'dataloader', None)
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'set_position'):
            # mmengine records the number of finished iterations in meta['iter'].
            done = int(checkpoint.get('meta', {}).get('iter', runner.iter))
            state['sampler'] = {'seed': sampler.seed, 'position': done * sampler.batch_size}
        checkpoint['ssvision'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = _decode_message_hub(checkpoint['message_hub'])
        state = checkpoint.get('ssvision')
        self._pending_rng = state.get('rng') if state else None
        self._pending_sampler = state.get('sampler') if state else None

    def before_train(self, runner) -> None:
        # runner.iter > 0 here only when the run resumed from a checkpoint.
        if runner.iter > 0 and self._pending_sampler:
            # The sampler was built from the run's seed before the checkpoint was read;
            # a run without a fixed seed must keep the stream it started with.
            sampler = getattr(runner.train_loop.dataloader, 'sampler', None)
            if hasattr(sampler, 'set_seed'):
                saved = int(self._pending_sampler['position'])
                if saved != runner.iter * sampler.batch_size:
                    raise ValueError(
                        f'the checkpoint stopped at item {saved} of the data stream, but '
                        f'{runner.iter} iterations of {sampler.batch_size} items reach '
                        f'{runner.iter * sampler.batch_size}: the batch size (B or mu) '
                        'changed since the checkpoint; resume with the same data settings')
                sampler.set_seed(int(self._pending_sampler['seed']))
        if self._pending_rng is not None and runner.iter > 0:
            set_rng_states(self._pending_rng)
        self._pending_rng = None
        self._pending_sampler = None
