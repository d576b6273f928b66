_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py',
    '../_base_/models/retinanet_r18_fpn_scenes.py',
]
# The source detector of source-free adaptation: RetinaNet trained on every labeled scene of
# the source domain (tools/prepare_data.py --scenes-only --sfod-scenes): Fashion-MNIST items
# over the china photo. The target domain (flower photo under fog) is never seen here.
# Its teacher is the zoo entry retinanet-r18_sfod-source, load_from of the adaptation
# configs beside this one (python tools/zoo.py build retinanet-r18_sfod-source).
num_classes = 10
source_root = 'data/scenes/det_sfod/source'
target_root = 'data/scenes/det_sfod/target'
batch_size = 8
max_iters = 1500

weak = [dict(type='DetWeakAugment', short_side=(112, 144), flip_prob=0.5)]
pack = [dict(type='PackDetInputs')]
model = dict(type='SemiDetector', detector={{_base_.detector}}, selector=None)
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=batch_size, unlabeled_ratio=0),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(type='CocoDetDataset', ann_file=source_root + '/train/annotations.json',
                     img_dir=source_root + '/train/images',
                     pipeline=weak + [dict(type='MultiBranch', branches=dict(sup=pack))]),
        unlabeled=None))
val_dataloader = dict(
    batch_size=10, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='CocoDetDataset', ann_file=source_root + '/val/annotations.json',
                 pipeline=pack))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoDetMetric', ann_file=source_root + '/val/annotations.json')
test_evaluator = val_evaluator
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, begin=0, end=200, start_factor=0.01),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=200, end=max_iters,
         T_max=max_iters - 200, eta_min_ratio=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
