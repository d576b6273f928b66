_base_ = ['./dssn_deeplabv3plus-r18_2k_scenes-1-16.py']
# DSSN with both strong views made on the device (BatchColorAugment: SegStrongAugment's
# colour jitter, grayscale and blur, per sample): the DataLoader workers make the weak
# view only; the strong views keep its geometry, as on the CPU.
_weak = [dict(type='SegWeakAugment', scale_range=(0.75, 1.5), crop_size=(96, 96),
              flip_prob=0.5)]
_strong = dict(type='BatchColorAugment', source='unsup_teacher', color_jitter_prob=0.8,
               grayscale_prob=0.2, blur_prob=0.5)
model = dict(data_preprocessor=dict(batch_augments=dict(unsup_student=_strong,
                                                        unsup_student2=_strong)))
train_dataloader = dict(dataset=dict(unlabeled=dict(pipeline=_weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=[dict(type='PackSegInputs')]))])))
