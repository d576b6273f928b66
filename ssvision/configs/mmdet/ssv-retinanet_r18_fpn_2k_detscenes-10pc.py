# ssvision inside an mmdetection 3.x project: a plain mmdetection config (mmdet's
# datasets, pipelines, sampler, hooks and loops) whose model is wrapped in
# ssvision's SsvSemiDetector (class-aware pseudo-box selection). Built-in detection
# scenes (tools/prepare_data.py --scenes-only --det-scenes), 10 % labeled.
# Run with mmdetection's own tools/train.py or ssvision's tools/train.py (as
# benchmarks/mmdet_plugin.py does).
custom_imports = dict(imports=['ssvision.integrations.mmdet'], allow_failed_imports=False)
default_scope = 'mmdet'

# names exactly as in the json's categories (mmdetection matches classes by name)
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle boot')
num_classes = 10
labeled_ann = 'data/scenes/det_fashion/splits/annotations.1@10.json'
unlabeled_ann = 'data/scenes/det_fashion/splits/annotations.1@10-unlabeled.json'
img_prefix = 'data/scenes/det_fashion/train/images/'
val_ann = 'data/scenes/det_fashion/val/annotations.json'
val_img_prefix = 'data/scenes/det_fashion/val/images/'

detector = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False, style='pytorch'),
    neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, start_level=1,
              add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=num_classes, in_channels=64, stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=2,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                 min_pos_iou=0, ignore_iof_thr=-1),
                   sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                   debug=False),
    # a low score_thr: the one-stage teacher's candidates reach the class-aware selector
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.01,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))

model = dict(
    type='SsvSemiDetector',
    detector=detector,
    data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                           data_preprocessor=detector['data_preprocessor']),
    semi_train_cfg=dict(
        freeze_teacher=True, sup_weight=1.0, unsup_weight=1.0,
        min_pseudo_bbox_wh=(1e-2, 1e-2), reg_uncertainty=0.1,
        selector=dict(type='ClassAwareBoxSelector', mode='prior', num_classes=num_classes,
                      ratio=0.5, floor=0.05, ceil=0.9, min_score=0.01)),
    semi_test_cfg=dict(predict_on='teacher'))

# ------------------------------------------------------------------ data (mmdetection's)
scale = [(112, 112), (144, 144)]
branch_field = ['sup', 'unsup_teacher', 'unsup_student']
meta = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
        'flip_direction', 'homography_matrix')
color_space = [[dict(type='ColorTransform')], [dict(type='AutoContrast')],
               [dict(type='Equalize')], [dict(type='Sharpness')], [dict(type='Contrast')],
               [dict(type='Brightness')]]
geometric = [[dict(type='TranslateX')], [dict(type='TranslateY')]]
sup_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=scale, keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='MultiBranch', branch_field=branch_field, sup=dict(type='PackDetInputs')),
]
weak_pipeline = [
    dict(type='RandomResize', scale=scale, keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=meta),
]
strong_pipeline = [
    dict(type='RandomResize', scale=scale, keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='RandomOrder', transforms=[
        dict(type='RandAugment', aug_space=color_space, aug_num=1),
        dict(type='RandAugment', aug_space=geometric, aug_num=1)]),
    dict(type='RandomErasing', n_patches=(1, 5), ratio=(0, 0.2)),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs', meta_keys=meta),
]
unsup_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadEmptyAnnotations'),
    dict(type='MultiBranch', branch_field=branch_field, unsup_teacher=weak_pipeline,
         unsup_student=strong_pipeline),
]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
batch_size = 8
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=True,
    sampler=dict(type='GroupMultiSourceSampler', batch_size=batch_size, source_ratio=[1, 1]),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='CocoDataset', metainfo=dict(classes=classes), data_root='',
             ann_file=labeled_ann, data_prefix=dict(img=img_prefix),
             filter_cfg=dict(filter_empty_gt=False), pipeline=sup_pipeline),
        dict(type='CocoDataset', metainfo=dict(classes=classes), data_root='',
             ann_file=unlabeled_ann, data_prefix=dict(img=img_prefix),
             filter_cfg=dict(filter_empty_gt=False), pipeline=unsup_pipeline),
    ]))
val_dataloader = dict(
    batch_size=10, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', metainfo=dict(classes=classes), data_root='',
                 ann_file=val_ann, data_prefix=dict(img=val_img_prefix), test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=val_ann, metric='bbox', classwise=True,
                     format_only=False)
test_evaluator = val_evaluator

# ------------------------------------------------------------------ schedule / runtime
max_iters = 2000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='TeacherStudentValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200)]
# Two EMA conventions for the same teacher. mmdetection's MeanTeacherHook(momentum=a):
#     teacher = (1 - a) * teacher + a * student      (a is the student's share)
# ssvision's EMATeacherHook(momentum=m), used by every configs/ file outside configs/mmdet:
#     teacher = m * teacher + (1 - m) * student      (m is the teacher's share)
# so mmdetection's momentum=0.01 below is ssvision's momentum=0.99 (and mmdetection's
# default 0.001 is ssvision's 0.999). 0.001 suits mmdetection's 180k-iteration schedules;
# over 2k iterations that teacher barely leaves its random initialisation (measured: after
# 800 iterations its RetinaNet scores all stayed under 0.02).
# ssvision.ResumeStateHook: checkpoints that torch.load(weights_only=True) reads (mmengine
# writes its log history as objects that torch >= 2.6 refuses), so `--resume` works and
# the selector's thresholds (model buffers) come back with the weights
custom_hooks = [dict(type='MeanTeacherHook', momentum=0.01),
                dict(type='ssvision.ResumeStateHook')]
default_hooks = dict(
    timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict())  # backend follows the device (ssvision train)
# window means for the pseudo-box health too (mmengine averages only losses and timings)
log_processor = dict(type='ssvision.SemiLogProcessor', by_epoch=False, window_size=50,
                     mean_pattern=r'loss|time|grad_norm|^(pb_|cand_|teacher_conf)')
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
