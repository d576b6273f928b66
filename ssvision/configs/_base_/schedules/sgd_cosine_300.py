# A short schedule for small CPU runs (the binary scenes): cosine decay over 300 iterations.
_base_ = ['./sgd_cosine_2k.py']
max_iters = 300
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min_ratio=0.2),
]
train_cfg = dict(max_iters=max_iters, val_interval=150)
