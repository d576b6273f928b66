_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_poly_80k.py',
    '../_base_/datasets/cityscapes_semi.py', '../_base_/models/deeplabv3plus_r50.py',
]
# DSSN as its authors run it on Cityscapes (kunzhan/DSSN, city/DSSN.py; GPU): every
# pixel is a pseudo-label (their Cityscapes mask keeps all), the loss
# (sup + 0.25 (s1 + s2 + fp1 + fp2)) / 2 + 0.005 (mse_s + mse_fp), no strong-view terms
# and a teacher that copies the student for the first five epochs (5 x 2603 / 4 ~ 3,254
# iterations at 4 unlabeled images per step), EMA keep rate 0.996 after, SGD lr 0.005
# with poly decay and the same rate on the decoder. Their labeled loss is OHEM cross
# entropy; ssvision's is plain cross entropy.
model = dict(
    type='DSSN', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassPeakSelector', high=0.3, scale=0.5, keep_all=True),
    semi_train_cfg=dict(cutmix_prob=0.5, loss_scale=0.5, strong_weight=0.25,
                        feature_weight=0.25, siamese_weight=0.01, feature_dropout=0.5,
                        strong_start_iter=3254),
)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='SGD', lr=0.005, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', by_epoch=False, begin=0, end='${max_iters}', power=0.9,
         eta_min=0.0),
]
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.996, ramp=False, copy_steps=3254),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=50),
    dict(type='HealthAlarmHook', interval=50),
]
