# Cityscapes (official layout: leftImg8bit/ + gtFine/ under data_root; raw label ids are
# mapped to the 19 train ids by CityscapesDataset, everything else is ignored as 255).
# Split: python tools/make_seg_split.py --dataset CityscapesDataset \
#            --data-root data/cityscapes --fractions 1/16 1/8 1/4 1/2 \
#            --out-dir data/cityscapes/splits
num_classes = 19
data_root = 'data/cityscapes'
split_file = 'data/cityscapes/splits/split_1-8_seed0.json'
labeled_batch_size = 2
unlabeled_ratio = 1
crop = (801, 801)

# the weak geometry runs once per image, before the branches (see scenes_seg_semi.py);
# 1024x2048 images are rescaled by 0.5-2.0 of half their size, as in UniMatch / DSSN
weak = [dict(type='SegWeakAugment', scale_range=(0.25, 1.0), crop_size=crop, flip_prob=0.5)]
strong = [dict(type='SegStrongAugment', color_jitter_prob=0.8, grayscale_prob=0.2,
               blur_prob=0.5)]
pack = [dict(type='PackSegInputs')]

labeled_pipeline = weak + [dict(type='MultiBranch', branches=dict(sup=pack))]
unlabeled_pipeline = weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=pack, unsup_student=strong + pack))
]
unlabeled_pipeline_two_strong = weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=pack, unsup_student=strong + pack,
                                           unsup_student2=strong + pack))
]

dataset_common = dict(type='CityscapesDataset', data_root=data_root, split='train',
                      split_file=split_file)
train_dataloader = dict(
    batch_size=labeled_batch_size * (1 + unlabeled_ratio),
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=labeled_batch_size,
                 unlabeled_ratio=unlabeled_ratio),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(**dataset_common, subset='labeled', pipeline=labeled_pipeline),
        unlabeled=dict(**dataset_common, subset='unlabeled', pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='CityscapesDataset', data_root=data_root, split='val', pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SegIoU', num_classes=num_classes)
test_evaluator = val_evaluator
