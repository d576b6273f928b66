"""USB 0.3.2 (``semilearn``), the reference the parity tests compare ssvision with.

``import semilearn`` runs the package's ``__init__``, which imports every part of USB:
its audio and NLP datasets and networks (``torchaudio``, ``transformers``) and its
experiment-logging hooks (``wandb``, ``aim``). None of the pieces compared here (the
masking, pseudo-labelling and distribution-alignment hooks, the losses and the
algorithms' ``train_step``) uses those four packages, and torchaudio has no build for
every torch release, so they are not installed. :func:`load` imports semilearn with a
``sys.meta_path`` finder, consulted after the real ones (an installed package still wins),
that answers for exactly those four top-level packages and their submodules with empty
stand-in modules whose attributes are dummy classes. The finder is removed right after
the import, and so are the stand-ins from ``sys.modules``: semilearn keeps the references
it bound at import time and imports none of them later, so nothing else in the test
session sees them.

:func:`algorithm` builds one of USB's algorithm classes on a light base: USB's own
``__init__``, ``set_hooks``, ``init`` and ``train_step`` run unchanged, with every argument
at USB's own default (its ``get_config`` parser plus the algorithm's ``get_argument()``)
unless overridden. Only what ``AlgorithmBase.__init__`` builds around the step is left
out (datasets, loaders, network, optimizer, the training-loop hooks); the network is the
identity, so the "images" passed to ``train_step`` are the logits themselves and
gradients of the loss reach them directly. :func:`record` keeps what its hooks return.

The ssvision side runs the same way: :func:`ssvision_model` builds an algorithm whose
student and teacher are :class:`IdentityNet` and :func:`ssvision_step` runs its
``loss`` (the whole recipe: selector, pseudo-labels, weighted losses) on logits.
:func:`logit_batches` draws the shared inputs.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import inspect
import sys
import types
from collections import OrderedDict

import torch
from torch import nn

from ssvision.models.network import StudentNetwork

#: Top-level packages semilearn imports that no compared piece uses (audio, NLP,
#: experiment logging).
STAND_INS = ('torchaudio', 'transformers', 'wandb', 'aim')
VERSION = '0.3.2'


class _StandInModule(types.ModuleType):
    """A module whose every public attribute is a fresh dummy class."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        dummy = type(name, (), {'__module__': self.__name__,
                                '__init__': lambda self, *args, **kwargs: None})
        setattr(self, name, dummy)
        return dummy


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds :data:`STAND_INS` (and any submodule of them) as empty packages."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition('.')[0] not in STAND_INS:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):
        return _StandInModule(spec.name)

    def exec_module(self, module):
        pass


def _is_stand_in(name: str) -> bool:
    return (name.partition('.')[0] in STAND_INS
            and isinstance(sys.modules.get(name), _StandInModule))


def _unpacked() -> str | None:
    """The semilearn wheel's files in ssvision's cache (:mod:`ssvision.utils.wheels`):
    semilearn is read from its wheel, not installed (its declared requirements, which
    none of the compared pieces use, would leave pip reporting them missing)."""
    from ssvision.utils import wheels
    return wheels.unpacked('semilearn', VERSION)


def available() -> bool:
    """Whether semilearn is installed or its wheel is cached (without importing it)."""
    return importlib.util.find_spec('semilearn') is not None or _unpacked() is not None


def _import_from(folder: str) -> None:
    """Import ``semilearn`` from an unpacked wheel: the package module is made from its
    ``__init__.py`` with the folder as its search location, so its submodules resolve
    there (the module search path stays as it is)."""
    import os.path as osp
    init = osp.join(folder, 'semilearn', '__init__.py')
    spec = importlib.util.spec_from_file_location(
        'semilearn', init, submodule_search_locations=[osp.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules['semilearn'] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [n for n in sys.modules if n == 'semilearn' or n.startswith('semilearn.')]:
            del sys.modules[name]
        raise


def _version(folder: str | None) -> str:
    if folder is None:
        from importlib.metadata import version
        return version('semilearn')
    import glob
    import os.path as osp
    meta = glob.glob(osp.join(folder, 'semilearn-*.dist-info', 'METADATA'))
    for line in open(meta[0]) if meta else []:
        if line.startswith('Version:'):
            return line.split(':', 1)[1].strip()
    return 'unknown'


def load() -> types.ModuleType:
    """``semilearn``, imported once with the stand-ins (see the module docstring).

    Raises:
        ImportError: semilearn is not installed, or not version :data:`VERSION`.
    """
    if 'semilearn' in sys.modules:
        return sys.modules['semilearn']
    folder = None if importlib.util.find_spec('semilearn') is not None else _unpacked()
    if folder is None and importlib.util.find_spec('semilearn') is None:
        raise ImportError('semilearn is neither installed nor cached (python -m '
                          f'ssvision.utils.wheels semilearn=={VERSION})')
    finder = _StandInFinder()
    sys.meta_path.append(finder)  # last: a real installation is found first
    try:
        if folder is None:
            import semilearn  # noqa: F401
        else:
            _import_from(folder)
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if _is_stand_in(n)]:
            del sys.modules[name]
    semilearn = sys.modules['semilearn']
    found = _version(folder)
    if found != VERSION:
        raise ImportError(f'the parity tests compare with semilearn {VERSION}, found {found}')
    return semilearn


class _Identity(nn.Module):
    """USB's network interface (``{'logits', 'feat'}``) over the identity: the inputs
    given to ``train_step`` are the logits."""

    def forward(self, x):
        return {'logits': x, 'feat': x}


class _NoEMA:
    """The EMA weights are the identity's (it has none): shadowing is a no-op."""

    def apply_shadow(self):
        pass

    def restore(self):
        pass


def _light_base():
    load()
    from semilearn.core import AlgorithmBase
    from semilearn.core.criterions import CELoss, ConsistencyLoss
    from semilearn.core.utils.misc import Bn_Controller

    class LightBase(AlgorithmBase):
        """``AlgorithmBase.__init__`` without datasets, network, optimizer and the
        training-loop hooks; the attributes ``train_step`` reads are set from ``args``
        as USB sets them."""

        def __init__(self, args, net_builder=None, tb_log=None, logger=None, **kwargs):
            self.args = args
            self.num_classes = args.num_classes
            self.ema_m = args.ema_m
            self.epochs = args.epoch
            self.num_train_iter = args.num_train_iter
            self.lambda_u = args.ulb_loss_ratio
            self.use_cat = args.use_cat
            self.use_amp = args.amp
            self.amp_cm = contextlib.nullcontext
            self.gpu = args.gpu
            self.rank = args.rank
            self.distributed = args.distributed
            self.world_size = args.world_size
            self.it = 0
            self.print_fn = lambda *a, **k: None
            self.bn_controller = Bn_Controller()
            self.model = _Identity()
            self.ema = _NoEMA()
            self.ce_loss = CELoss()
            self.consistency_loss = ConsistencyLoss()
            self._hooks = []
            self.hooks_dict = OrderedDict()
            self.set_hooks()

        def set_hooks(self):
            pass  # the training-loop hooks (optimizer step, EMA, evaluation, logging)

    return LightBase


def usb_args(name: str, **config) -> types.SimpleNamespace:
    """USB's arguments for algorithm ``name``: the defaults of its ``get_config`` parser
    and of the algorithm's ``get_argument()``, then ``config``; single process
    (``distributed=False``, which USB's launcher sets)."""
    load()
    import semilearn.lighting.config as cfg_mod
    port = cfg_mod.get_port
    cfg_mod.get_port = lambda: 0  # it shells out to netstat and draws from `random`
    try:
        args = cfg_mod.get_config({'algorithm': name, **config})
    finally:
        cfg_mod.get_port = port
    if not hasattr(args, 'distributed'):
        args.distributed = False
    return args


def algorithm(name: str, **config):
    """USB's algorithm ``name`` (``'fixmatch'``, ``'flexmatch'``, ...) on the light base,
    with :func:`usb_args`. ``alg.it`` is the 0-based iteration ``train_step`` reads."""
    load()
    from semilearn.core.utils import ALGORITHMS
    cls = ALGORITHMS[name]
    standin = type(f'{cls.__name__}Reference', (cls, _light_base()), {})
    with contextlib.redirect_stdout(None):  # DistAlignEMAHook prints its target
        return standin(usb_args(name, **config), None)


def train_step(alg, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor,
               x_ulb_s: torch.Tensor, idx_ulb: torch.Tensor | None = None):
    """One USB ``train_step`` on logits (the network is the identity); returns
    ``(total_loss, log_dict)``. Algorithms whose step reads the unlabeled indices
    (FlexMatch) get ``idx_ulb``."""
    kwargs = dict(x_lb=x_lb, y_lb=y_lb, x_ulb_w=x_ulb_w, x_ulb_s=x_ulb_s)
    if 'idx_ulb' in inspect.signature(alg.train_step).parameters:
        kwargs['idx_ulb'] = idx_ulb
    out, log = alg.train_step(**kwargs)
    return out['loss'], log


def record(alg) -> dict:
    """Wrap the hooks' ``masking``, ``gen_ulb_targets`` and ``dist_align`` so that each
    call's result is kept in the returned dict under the method's name (the last call
    wins)."""
    last: dict = {}

    def keep(name, method):
        def wrapped(*args, **kwargs):
            last[name] = method(*args, **kwargs)
            return last[name]
        return wrapped

    for hook in alg.hooks_dict.values():
        for fn in ('masking', 'gen_ulb_targets', 'dist_align'):
            if hasattr(hook, fn):
                setattr(hook, fn, keep(fn, getattr(hook, fn)))
    return last


# ----------------------------------------------------------------- ssvision side
class IdentityNet(StudentNetwork):
    """A "network" whose outputs are its inputs: ssvision's recipe then runs on logits
    (the classifier contract, ``num_classes``, with forward overridden)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        return x


def ssvision_model(algorithm_type: str, num_classes: int, **kwargs):
    """An ssvision algorithm (``'FixMatch'``, ...) over :class:`IdentityNet`, in
    training mode; ``kwargs`` go to its constructor."""
    from mmengine.registry import DefaultScope

    import ssvision.models  # noqa: F401  (registers the algorithms)
    from ssvision.registry import MODELS

    # ssvision's scope, whatever another test of the session left as the default
    with DefaultScope.overwrite_default_scope('ssvision'):
        model = MODELS.build(dict(type=algorithm_type,
                                  model=dict(type=IdentityNet, num_classes=num_classes),
                                  **kwargs))
    model.train()
    return model


@contextlib.contextmanager
def iteration(it: int, max_iters: int | None = None):
    """mmengine's current iteration (and ``max_iters``) for a block, restored after."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    old = {k: hub.get_info(k) for k in ('iter', 'max_iters')}
    hub.update_info('iter', it)
    if max_iters is not None:
        hub.update_info('max_iters', max_iters)
    try:
        yield
    finally:
        for k, v in old.items():
            hub.update_info(k, v)


def ssvision_step(model, it: int, x_lb: torch.Tensor, y_lb: torch.Tensor,
                  x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor,
                  idx_ulb: torch.Tensor | None = None):
    """One training iteration's losses of ``model`` (see :func:`ssvision_model`) on
    logits, at iteration ``it``; returns ``(total, losses, (labels, weight))`` where
    ``total`` is what mmengine's ``parse_losses`` optimises and ``(labels, weight)``
    is what the selector returned."""
    seen = {}
    handle = model.selector.register_forward_hook(
        lambda mod, args, out: seen.setdefault('out', out))
    inputs = {'sup': x_lb, 'unsup_teacher': x_ulb_w, 'unsup_student': x_ulb_s}
    teacher_meta = {} if idx_ulb is None else {'sample_idx': idx_ulb}
    data_samples = {'sup': {'gt_label': y_lb}, 'unsup_teacher': teacher_meta,
                    'unsup_student': {}}
    try:
        with iteration(it):
            losses = model.loss(inputs, data_samples)
    finally:
        handle.remove()
    total, _ = model.parse_losses(losses)
    return total, losses, seen.get('out')


# ----------------------------------------------------------------- shared inputs
def logit_batches(steps: int = 60, num_classes: int = 6, batch: int = 32, lb_batch: int = 8,
                  num_unlabeled: int = 160, seed: int = 0, flat_steps: tuple = (30,)):
    """A seeded sequence of training batches as logits, one dict per step with ``it``,
    ``x_lb`` / ``y_lb`` (labeled logits and labels), ``x_ulb_w`` / ``x_ulb_s`` (weak and
    strong unlabeled logits) and ``idx_ulb`` (distinct indices in ``[0,
    num_unlabeled)``).

    Classes come with frequencies ``2^-c`` (32:16:8:4:2:1 for 6 classes, so rare
    classes are often absent from a batch); the true class's logit margin grows from
    about 1 to about 8 over the sequence, so confidences rise through every threshold;
    the strong view is the weak one plus noise. At ``flat_steps`` every unlabeled
    sample is nearly uniform with a slight lead for class 0 (a batch that thresholds
    reject entirely).
    """
    g = torch.Generator().manual_seed(seed)
    freq = 2.0 ** -torch.arange(num_classes, dtype=torch.float64)
    for t in range(steps):
        progress = t / max(steps - 1, 1)
        y = torch.multinomial(freq, batch, replacement=True, generator=g)
        margin = (1.0 + 7.0 * progress) * (0.5 + torch.rand(batch, 1, generator=g))
        weak = torch.randn(batch, num_classes, generator=g)
        weak = weak + margin * torch.nn.functional.one_hot(y, num_classes)
        if t in flat_steps:
            weak = torch.zeros(batch, num_classes)
            weak[:, 0] = 0.01
        strong = weak + 0.8 * torch.randn(batch, num_classes, generator=g)
        y_lb = torch.multinomial(freq, lb_batch, replacement=True, generator=g)
        x_lb = torch.randn(lb_batch, num_classes, generator=g) * (1.0 + 4.0 * progress)
        x_lb = x_lb + 2.0 * torch.nn.functional.one_hot(y_lb, num_classes)
        idx = torch.randperm(num_unlabeled, generator=g)[:batch]
        yield dict(it=t, x_lb=x_lb.float(), y_lb=y_lb, x_ulb_w=weak.float(),
                   x_ulb_s=strong.float(), idx_ulb=idx)


def leaves(batch: dict) -> tuple[dict, dict]:
    """Two independent copies of ``batch`` whose labeled and strong logits are leaves
    with gradients (one for ssvision, one for USB)."""
    def copy():
        out = dict(batch)
        out['x_lb'] = batch['x_lb'].clone().requires_grad_(True)
        out['x_ulb_s'] = batch['x_ulb_s'].clone().requires_grad_(True)
        out['x_ulb_w'] = batch['x_ulb_w'].clone()
        return out
    return copy(), copy()


#: Float32 throughout (what both libraries train in): losses and gradients are sums
#: over the batch taken in another order, statistics EMAs of means taken as sums / L.
LOSS_TOL = dict(rtol=1e-5, atol=1e-7)
STATE_TOL = dict(rtol=1e-5, atol=1e-7)


def close(actual, expected, what: str, step: int, tol: dict = LOSS_TOL) -> None:
    """``torch.testing.assert_close`` in float64, naming the quantity and the step."""
    actual = torch.as_tensor(actual).detach().double().cpu()
    expected = torch.as_tensor(expected).detach().double().cpu()
    torch.testing.assert_close(actual, expected, **tol,
                               msg=lambda m: f'{what} differs at step {step}: {m}')


def lockstep(ours, ref, steps: int, num_classes: int, with_idx: bool = False, **kwargs):
    """Both sides on the same seeded logits (:func:`logit_batches`), step by step: yields
    per step ``SimpleNamespace(t, a, b, total, losses, labels, weight, ref_total, log)``
    (``a`` / ``b``: ssvision's and USB's copies of the batch; ``with_idx`` passes the
    unlabeled sample indices, FlexMatch's key)."""
    for batch in logit_batches(steps, num_classes, **kwargs):
        t = batch['it']
        a, b = leaves(batch)
        idx = ('idx_ulb',) if with_idx else ()
        total, losses, (labels, weight) = ssvision_step(
            ours, t, a['x_lb'], a['y_lb'], a['x_ulb_w'], a['x_ulb_s'], *(a[k] for k in idx))
        ref.it = t
        ref_total, log = train_step(ref, b['x_lb'], b['y_lb'], b['x_ulb_w'], b['x_ulb_s'],
                                    *(b[k] for k in idx))
        yield types.SimpleNamespace(t=t, a=a, b=b, total=total, losses=losses, labels=labels,
                                    weight=weight, ref_total=ref_total, log=log)


def same_total_and_gradients(s, labeled: bool = False) -> None:
    """The total losses of one :func:`lockstep` step agree, and so do their gradients
    with respect to the strong-view logits (and the labeled ones with ``labeled``)."""
    close(s.total, s.ref_total, 'total loss', s.t)
    s.total.backward()
    s.ref_total.backward()
    close(s.a['x_ulb_s'].grad, s.b['x_ulb_s'].grad, 'strong-view gradient', s.t)
    if labeled:
        close(s.a['x_lb'].grad, s.b['x_lb'].grad, 'labeled gradient', s.t)
