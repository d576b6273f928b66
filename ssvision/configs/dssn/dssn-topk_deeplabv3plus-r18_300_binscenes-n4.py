_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_300.py',
    '../_base_/datasets/scenes_binary_seg_semi.py', '../_base_/models/deeplabv3plus_r18_binary.py',
]
# ssvision's DSSN variant (DSSNTopK) on the binary scenes (4 labeled scenes): the
# 11-class scene settings, except that each class keeps at most ratio x its labeled
# share of the pixels (prior=True): a fixed share of whatever the teacher predicts
# followed a teacher that over-predicted the foreground (43 % of the pixels against
# 18-23 % in the labels).
model = dict(
    type='DSSNTopK', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5, scope='image',
                  prior=True, num_classes=2),
    aux_heads=[dict(type='DualSiameseConsistencyHead', loss_weight=1.0, image_weight=1.0,
                    feature_weight=1.0, feature_dropout=0.5)],
    semi_train_cfg=dict(unsup_weight=1.0, cutmix_prob=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
