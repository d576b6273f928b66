_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/datasets/scenes_det_semi.py', '../_base_/models/retinanet_r18_fpn_scenes.py',
]
# Supervised-only one-stage baseline: RetinaNet on the labeled 10 % alone.
model = dict(type='SemiDetector', detector={{_base_.detector}}, selector=None)
train_dataloader = dict(
    batch_size={{_base_.labeled_batch_size}},
    sampler=dict(type='SemiSampler', labeled_batch_size={{_base_.labeled_batch_size}},
                 unlabeled_ratio=0))
