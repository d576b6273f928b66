# FixMatch's optimiser: SGD + Nesterov, cosine decay to ~cos(7 pi / 16) = 0.2 of the lr.
# The schedule follows max_iters wherever it is set (a child config, --cfg-options):
# '${max_iters}' is read when the run is built (ssvision.utils.knobs).
max_iters = 2000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end='${max_iters}', T_max='${max_iters}',
         eta_min_ratio=0.2),
]
train_cfg = dict(type='SemiIterBasedTrainLoop', max_iters='${max_iters}', val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
