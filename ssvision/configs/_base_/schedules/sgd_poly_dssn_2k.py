# DSSN's optimiser (kunzhan/DSSN, voc/DSSN.py): SGD with momentum 0.9, weight decay 1e-4,
# the authors' learning rates (0.002 for the backbone, 10x for everything else) and poly
# decay with power 0.9 to 0 over max_iters (read as '${max_iters}' when the run is built).
max_iters = 2000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'student.backbone': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='PolyLR', by_epoch=False, begin=0, end='${max_iters}', power=0.9, eta_min=0.0),
]
train_cfg = dict(type='SemiIterBasedTrainLoop', max_iters='${max_iters}', val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
