# Detection from scratch: SGD, linear warm-up over warmup_iters, cosine to 0.1 of the lr.
# max_iters and warmup_iters are read as '${NAME}' when the run is built.
max_iters = 2000
warmup_iters = 200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, begin=0, end='${warmup_iters}', start_factor=0.01),
    dict(type='CosineAnnealingLR', by_epoch=False, begin='${warmup_iters}', end='${max_iters}',
         T_max='${max_iters - warmup_iters}', eta_min_ratio=0.1),
]
train_cfg = dict(type='SemiIterBasedTrainLoop', max_iters='${max_iters}', val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
