_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/mnist5k_semi.py', '../_base_/models/tiny_cnn.py',
]
# ssvision's DSSN variant (DSSNTopK) for classification: the authors' DSSN is a
# segmentation method (per-pixel selection and decoder feature perturbation).
model = dict(
    type='DSSNTopK',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5),
    aux_heads=[dict(type='DualSiameseConsistencyHead', loss_weight=1.0, image_weight=1.0,
                    feature_weight=1.0, feature_dropout=0.5)],
    semi_train_cfg=dict(unsup_weight=1.0),
)
train_dataloader = dict(dataset=dict(unlabeled=dict(
    pipeline={{_base_.unlabeled_pipeline_two_strong}})))
