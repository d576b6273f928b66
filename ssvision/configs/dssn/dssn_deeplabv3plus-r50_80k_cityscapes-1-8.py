_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_poly_80k.py',
    '../_base_/datasets/cityscapes_semi.py', '../_base_/models/deeplabv3plus_r50.py',
]
# DSSN on Cityscapes with 1/8 of the fine-labeled training images (372 of 2975); GPU.
# Class-aware selection per image, two strong views, dual-level Siamese consistency,
# CutMix between unlabeled images. EMA 0.999 for the long schedule.
model = dict(
    type='DSSN', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5, scope='image'),
    aux_heads=[dict(type='DualSiameseConsistencyHead', loss_weight=1.0, image_weight=1.0,
                    feature_weight=1.0, feature_dropout=0.5)],
    semi_train_cfg=dict(unsup_weight=1.0, cutmix_prob=0.5),
)
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.999, ramp=True),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=50),
    dict(type='HealthAlarmHook', interval=50),
]
