# A photo-trained pretrained start that can be built here (model zoo entry
# resnet18_items-on-photos): a timm / torchvision-layout ResNet-18 (RGB) trained with labels
# to name the one Fashion-MNIST item pasted on a crop of a real photo (ItemsOnPhotos).
# Disjoint from everything the scene benchmarks score on: the items are the 60,000 train
# items (the scenes' validation items come from t10k) and the photos are scikit-image's
# (`pip install scikit-image`), not the two scikit-learn photos behind every
# scene. It plays ImageNet's part: object-centric labels on real backgrounds. Normalised
# with the ImageNet mean / std that the scene configs use, so it drops into them as is.
# tools/zoo.py build publishes its teacher in torchvision classifier layout.
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py']
max_iters = 3000
num_classes = 10
model = dict(
    type='SupervisedOnly',
    model=dict(type='TimmClassifier', model_name='resnet18', num_classes=num_classes,
               in_channels=3),
    data_preprocessor=dict(type='SemiDataPreprocessor', mean=(123.7, 116.3, 103.5),
                           std=(58.4, 57.1, 57.4)),
)
train_pipeline = [dict(type='MultiBranch', branches=dict(sup=[
    dict(type='WeakAugment', flip_prob=0.5, pad_ratio=0.125), dict(type='PackClsInputs')]))]
labeled_batch_size = 64
train_dataloader = dict(
    batch_size=labeled_batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=labeled_batch_size, unlabeled_ratio=0),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(type='ItemsOnPhotos', items='fashion_mnist', size=64, seed=0,
                     num_classes=num_classes, pipeline=train_pipeline),
        unlabeled=None),
)
# t10k items on the same photos with another composition seed (the backbone's own check;
# the scene benchmarks never use these images)
val_dataloader = dict(
    batch_size=250,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='ItemsOnPhotos', items='fashion_mnist_test', size=64, seed=1,
                 limit=2000, num_classes=num_classes, pipeline=[dict(type='PackClsInputs')]),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SemiAccuracy')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, begin=0, end=100, start_factor=0.1),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters,
         T_max=max_iters - 100, eta_min_ratio=0.01),
]
train_cfg = dict(max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
