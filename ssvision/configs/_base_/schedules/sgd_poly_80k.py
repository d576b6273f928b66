# Segmentation schedule: SGD, poly decay (power 0.9), 80k iterations.
max_iters = 80000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', by_epoch=False, begin=0, end='${max_iters}', power=0.9, eta_min=1e-4),
]
train_cfg = dict(type='SemiIterBasedTrainLoop', max_iters='${max_iters}', val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
