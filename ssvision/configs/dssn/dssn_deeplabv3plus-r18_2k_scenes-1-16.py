_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_poly_dssn_2k.py',
    '../_base_/datasets/scenes_seg_semi.py', '../_base_/models/deeplabv3plus_r18.py',
]
# DSSN as its authors run it (kunzhan/DSSN, voc/DSSN.py): per image each class keeps the
# pixels above 0.96 x its peak when the peak exceeds 0.92; two strong views with their
# own CutMix boxes; the weak view decoded from two Dropout2d(0.5) perturbations of the
# low- and high-level features; standardised-logit Siamese MSE; loss
# 0.5 (sup + 0.25 (s1 + s2 + fp1 + fp2) + 0.01 (mse_s + mse_fp)); EMA keep rate 0.996
# over the whole state, a copy of the student after the first step; SGD with poly decay
# and a 10x learning rate outside the backbone (the authors' 0.002 / 0.02). ssvision's
# variant is dssn-topk_*.
model = dict(
    type='DSSN', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassPeakSelector', high=0.92, scale=0.96),
    semi_train_cfg=dict(cutmix_prob=0.5, loss_scale=0.5, strong_weight=0.25,
                        feature_weight=0.25, siamese_weight=0.01, feature_dropout=0.5),
)
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.996, ramp=False, copy_steps=1),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=5),
    dict(type='HealthAlarmHook', interval=50),
]
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
