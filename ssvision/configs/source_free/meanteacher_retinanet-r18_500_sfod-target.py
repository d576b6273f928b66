_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/models/retinanet_r18_fpn_scenes.py',
]
# Source-free adaptation, mean teacher: the source detector (supervised_retinanet-r18_1500_
# sfod-source.py, from the zoo) adapts to the target domain (flower
# photo under fog) from unlabeled target scenes alone: no labeled batch, no source image.
# The teacher's boxes scoring 0.5 or more train the student's strong views; its other
# detections scoring 0.2 or more are ignore regions (left out of the classification loss
# instead of trained as background: the teacher held its mAP with them, 6.5 against 6.1
# without, one seed; BENCHMARKS.md).
num_classes = 10
source_root = 'data/scenes/det_sfod/source'
target_root = 'data/scenes/det_sfod/target'
# the source detector from the zoo (`python tools/zoo.py build retinanet-r18_sfod-source`
# trains it here: the source config's recipe), or any trained detector's checkpoint
load_from = 'zoo://retinanet-r18_sfod-source'
batch_size = 8
max_iters = 500

weak = [dict(type='DetWeakAugment', short_side=(112, 144), flip_prob=0.5)]
strong = [dict(type='PhotometricAugment', color_jitter_prob=0.8, grayscale_prob=0.2,
               blur_prob=0.3),
          dict(type='DetStrongAugment', affine_prob=0.7, scale=(0.75, 1.25), translate=0.1,
               cutout_prob=0.7)]
pack = [dict(type='PackDetInputs')]
model = dict(type='SemiDetector', detector={{_base_.detector}},
             selector=dict(type='FixedScoreBoxSelector', threshold=0.5),
             semi_train_cfg=dict(source_free=True, unsup_weight=1.0, reg_uncertainty=0.1,
                                 ignore_score=0.2))
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=0, unlabeled_batch_size=batch_size),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset', labeled=None,
        # the target's boxes are read for pseudo-box health (precision) only
        unlabeled=dict(type='CocoDetDataset', ann_file=target_root + '/train/annotations.json',
                       img_dir=target_root + '/train/images', subset='unlabeled',
                       pipeline=weak + [dict(type='MultiBranch', branches=dict(
                           unsup_teacher=pack, unsup_student=strong + pack))])))
val_dataloader = dict(
    batch_size=10, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='CocoDetDataset', ann_file=target_root + '/val/annotations.json',
                 pipeline=pack))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoDetMetric', ann_file=target_root + '/val/annotations.json')
test_evaluator = val_evaluator
# adaptation: a small constant learning rate after a short warm-up
optim_wrapper = dict(optimizer=dict(lr=0.005))
param_scheduler = [dict(type='LinearLR', by_epoch=False, begin=0, end=50, start_factor=0.1)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
# a slower teacher than the semi-supervised default: it is the adapted model
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.999, ramp=False),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=5),
    dict(type='HealthAlarmHook', interval=50),
]
