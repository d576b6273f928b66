_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/datasets/scenes_det_semi.py', '../_base_/models/fasterrcnn_r18_fpn_scenes.py',
]
# Mean teacher with class-aware score thresholds: each class keeps its own top boxes.
model = dict(type='SemiDetector', detector={{_base_.detector}},
             selector=dict(type='ClassAwareBoxSelector', mode='prior', num_classes=10,
                           ratio=0.5, floor=0.3, ceil=0.9),
             # regression gate: flip consistency of the teacher; for Soft Teacher's box
             # jitter instead set reg_uncertainty_mode='jitter', reg_uncertainty=0.02
             semi_train_cfg=dict(unsup_weight=1.0, burn_in_iters=200, reg_uncertainty=0.1))
