# Built-in binary scenes (tools/prepare_data.py --binary-scenes): 3-6 Fashion-MNIST items
# on real photos, 128x128, foreground (1) vs background (0), items cover about 18 % of
# the pixels; 200 training scenes (4 or 8 labeled), 100 validation scenes.
_base_ = ['./scenes_seg_semi.py']
num_classes = 2
classes = ('background', 'object')
data_root = 'data/scenes/seg_binary/train'
split_file = 'data/scenes/seg_binary/splits/split_n4_seed0.json'
_data = dict(data_root=data_root, split_file=split_file, num_classes=num_classes,
             classes=classes)
val_dataloader = dict(dataset=dict(data_root='data/scenes/seg_binary/val',
                                   num_classes=num_classes, classes=classes))
test_dataloader = val_dataloader
val_evaluator = dict(type='SegIoU', num_classes=num_classes)
test_evaluator = val_evaluator

# Strong views without colour changes (blur only; CutMix is the algorithm's): here an
# item and the photo around it differ mostly in colour, and colour jitter / grayscale
# make flat photo regions look like items. With them FixMatch's student drifted to
# false-positive foreground and DSSNTopK ended below supervised-only; without them it is
# above it (BENCHMARKS.md, "Binary scenes"). The
# 11-class scenes keep colour jitter.
strong = [dict(type='SegStrongAugment', color_jitter_prob=0.0, grayscale_prob=0.0,
               blur_prob=0.5)]
_weak = [dict(type='SegWeakAugment', scale_range=(0.75, 1.5), crop_size=(96, 96),
              flip_prob=0.5)]
_pack = [dict(type='PackSegInputs')]
unlabeled_pipeline = _weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=_pack, unsup_student=strong + _pack))
]
unlabeled_pipeline_two_strong = _weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=_pack, unsup_student=strong + _pack,
                                           unsup_student2=strong + _pack))
]
train_dataloader = dict(dataset=dict(labeled=_data,
                                     unlabeled=dict(**_data, pipeline=unlabeled_pipeline)))
