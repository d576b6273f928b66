# Fashion-MNIST from Debian's dataset-fashion-mnist package: 60,000 train images give
# the labeled / unlabeled split (tools/prepare_data.py); the 10,000 t10k images test.
num_classes = 10
# None: searched as fashion-mnist/ in $SSVISION_DATA, ./data, then /usr/share/datasets
data_root = None
split_file = 'data/splits/fashion_mnist_4pc_seed0.json'
labeled_batch_size = 32
unlabeled_ratio = 7

weak = [dict(type='WeakAugment', flip_prob=0.5, pad_ratio=0.125)]
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
        labeled=dict(type='FashionMNIST', root=data_root, train=True, split_file=split_file,
                     subset='labeled', num_classes=num_classes, pipeline=labeled_pipeline),
        unlabeled=dict(type='FashionMNIST', root=data_root, train=True, split_file=split_file,
                       subset='unlabeled', num_classes=num_classes,
                       pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='FashionMNIST', root=data_root, train=False, num_classes=num_classes,
                 pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SemiAccuracy')
test_evaluator = val_evaluator
