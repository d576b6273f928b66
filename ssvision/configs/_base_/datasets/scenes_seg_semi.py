# Built-in segmentation scenes (tools/prepare_data.py --scenes): Fashion-MNIST items on
# real photos, 128x128, 11 classes (background + 10), VOC layout.
num_classes = 11
classes = ('background', 'T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle_boot')
data_root = 'data/scenes/seg_fashion/train'
val_root = 'data/scenes/seg_fashion/val'
split_file = 'data/scenes/seg_fashion/splits/split_1-16_seed0.json'
labeled_batch_size = 4
unlabeled_ratio = 1
crop = (96, 96)

# The weak geometry runs once per image, before the branches, so every view of an
# unlabeled image shares it; strong views add photometric changes only (and CutMix
# between images, done by the algorithm on the batch).
weak = [dict(type='SegWeakAugment', scale_range=(0.75, 1.5), crop_size=crop, flip_prob=0.5)]
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

dataset_common = dict(type='VOCSegDataset', data_root=data_root, split_file=split_file,
                      num_classes=num_classes, classes=classes)
train_dataloader = dict(
    batch_size=labeled_batch_size * (1 + unlabeled_ratio),
    num_workers=2,
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
    batch_size=10,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='VOCSegDataset', data_root=val_root,
                 split_file='ImageSets/Segmentation/all.txt', num_classes=num_classes,
                 classes=classes, pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SegIoU', num_classes=num_classes)
test_evaluator = val_evaluator
