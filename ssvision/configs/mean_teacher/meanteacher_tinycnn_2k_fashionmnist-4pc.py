_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/fashion_mnist_semi.py', '../_base_/models/tiny_cnn.py',
]
model = dict(
    type='MeanTeacher',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='FixedThresholdSelector', threshold=0.0),  # keep every sample
    semi_train_cfg=dict(unsup_weight=10.0, unsup_warmup_iters=400, consistency='mse'),
)
