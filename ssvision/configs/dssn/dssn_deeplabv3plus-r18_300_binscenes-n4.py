_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_poly_dssn_2k.py',
    '../_base_/datasets/scenes_binary_seg_semi.py', '../_base_/models/deeplabv3plus_r18_binary.py',
]
# DSSN as its authors run it (see dssn_deeplabv3plus-r18_2k_scenes-1-16.py) on the binary
# scenes, 4 labeled. With two classes the standardised logits of a pixel are +-1/sqrt(2):
# the authors' Siamese MSE then only sees which class leads (ssvision's variant,
# dssn-topk_*, switches to probabilities there).
model = dict(
    type='DSSN', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassPeakSelector', high=0.92, scale=0.96),
    semi_train_cfg=dict(cutmix_prob=0.5, loss_scale=0.5, strong_weight=0.25,
                        feature_weight=0.25, siamese_weight=0.01, feature_dropout=0.5),
)
max_iters = 300
train_cfg = dict(val_interval=150)
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.996, ramp=False, copy_steps=1),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=5),
    dict(type='HealthAlarmHook', interval=50),
]
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
