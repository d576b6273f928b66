_base_ = ['../fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py']
model = dict(
    type='FreeMatch',
    selector=dict(_delete_=True, type='FreeMatchSelector', num_classes=10, ema_momentum=0.999),
    semi_train_cfg=dict(fairness_weight=0.01),
)
