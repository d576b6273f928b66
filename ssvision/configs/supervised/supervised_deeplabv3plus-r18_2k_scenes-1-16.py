_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/scenes_seg_semi.py', '../_base_/models/deeplabv3plus_r18.py',
]
model = dict(type='SupervisedOnly', model={{_base_.model_net}}, task={{_base_.task}},
             data_preprocessor={{_base_.data_preprocessor}})
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))
train_dataloader = dict(
    batch_size={{_base_.labeled_batch_size}},
    sampler=dict(type='SemiSampler', labeled_batch_size={{_base_.labeled_batch_size}},
                 unlabeled_ratio=0))
