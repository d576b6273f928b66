# FixMatch's full schedule: 2^20 iterations, SGD + Nesterov, cosine to ~0.2 of the lr.
max_iters = 1048576
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end='${max_iters}', T_max='${max_iters}',
         eta_min_ratio=0.2),
]
train_cfg = dict(type='SemiIterBasedTrainLoop', max_iters='${max_iters}', val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
