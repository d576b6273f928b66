_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch with its strong views made on the device (BatchRandAugment, per sample, the CPU
# RandAugment's op set and law, then Cutout): the DataLoader workers make two weak views
# per unlabeled image (each its own crop, as the CPU strong view has) and no RandAugment.
# Meant for a GPU whose workers cannot keep up; on a CPU the default config is as fast.
_weak = [dict(type='WeakAugment', flip_prob=0.0, pad_ratio=0.125)]
_pack = [dict(type='PackClsInputs')]
model = dict(data_preprocessor=dict(batch_augments=dict(
    unsup_student=dict(type='BatchRandAugment', num_ops=2, magnitude=10, cutout_ratio=0.5))))
train_dataloader = dict(dataset=dict(unlabeled=dict(pipeline=[
    dict(type='MultiBranch', branches=dict(unsup_teacher=_weak + _pack,
                                           unsup_student=_weak + _pack))])))
