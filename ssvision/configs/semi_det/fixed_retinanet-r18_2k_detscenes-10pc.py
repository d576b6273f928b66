_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/datasets/scenes_det_semi.py', '../_base_/models/retinanet_r18_fpn_scenes.py',
]
# One-stage mean teacher with one score threshold for every class (0.9, as mmdetection's
# semi-supervised configs): the baseline whose sigmoid-scored teacher may keep nothing.
model = dict(type='SemiDetector', detector={{_base_.detector}},
             selector=dict(type='FixedScoreBoxSelector', threshold=0.9),
             semi_train_cfg=dict(unsup_weight=1.0, burn_in_iters=200, reg_uncertainty=0.1))
