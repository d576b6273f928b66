_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/scenes_seg_semi.py', '../_base_/models/deeplabv3plus_r18.py',
]
# ssvision's DSSN variant (DSSNTopK; the authors' recipe is dssn_*): EMA teacher, two
# strong views sharing one CutMix box, the dual-level Siamese consistency head, and per
# image each class keeps its own top-half most confident pixels (above 0.5).
model = dict(
    type='DSSNTopK', model={{_base_.model_net}}, task={{_base_.task}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5, scope='image'),
    aux_heads=[dict(type='DualSiameseConsistencyHead', loss_weight=1.0, image_weight=1.0,
                    feature_weight=1.0, feature_dropout=0.5)],
    semi_train_cfg=dict(unsup_weight=1.0, cutmix_prob=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
