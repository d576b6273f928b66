_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/datasets/scenes_det_semi.py', '../_base_/models/retinanet_r18_fpn_scenes.py',
]
# One-stage mean teacher (RetinaNet) with class-aware score thresholds: the teacher's
# low sigmoid scores still yield each class's best boxes, where a fixed 0.9 yields none.
# Each class keeps about half as many boxes per image as the labeled images hold objects
# of it (the count prior), its best-scoring ones.
model = dict(type='SemiDetector', detector={{_base_.detector}},
             selector=dict(type='ClassAwareBoxSelector', mode='prior', num_classes=10,
                           ratio=0.5, floor=0.1, ceil=0.9, min_score=0.02),
             semi_train_cfg=dict(unsup_weight=1.0, burn_in_iters=200, reg_uncertainty=0.1))
