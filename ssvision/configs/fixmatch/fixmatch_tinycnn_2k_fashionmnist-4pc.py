_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/fashion_mnist_semi.py', '../_base_/models/tiny_cnn.py',
]
model = dict(
    type='FixMatch',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='FixedThresholdSelector', threshold=0.95),
    semi_train_cfg=dict(unsup_weight=1.0),
)
