_base_ = ['./fixmatch_wrn28-2_1m_cifar10-4pc.py']
# The published FixMatch CIFAR-10 recipe with its strong views made on the GPU
# (BatchRandAugment, per sample, then Cutout): the DataLoader workers make two weak views
# (flip + pad-crop) per unlabeled image and no RandAugment.
_weak = [dict(type='WeakAugment', flip_prob=0.5, pad_ratio=0.125)]
_pack = [dict(type='PackClsInputs')]
model = dict(data_preprocessor=dict(batch_augments=dict(
    unsup_student=dict(type='BatchRandAugment', num_ops=2, magnitude=10, cutout_ratio=0.5))))
train_dataloader = dict(dataset=dict(unlabeled=dict(pipeline=[
    dict(type='MultiBranch', branches=dict(unsup_teacher=_weak + _pack,
                                           unsup_student=_weak + _pack))])))
