_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_300.py',
    '../_base_/datasets/scenes_binary_seg_semi.py', '../_base_/models/deeplabv3plus_r18_binary.py',
]
# FixMatch (threshold 0.95, CutMix 0.5) on the binary scenes (4 labeled scenes).
model = dict(
    type='FixMatch', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='FixedThresholdSelector', threshold=0.95),
    semi_train_cfg=dict(unsup_weight=1.0, cutmix_prob=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))
