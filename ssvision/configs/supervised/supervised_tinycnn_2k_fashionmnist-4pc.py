_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/fashion_mnist_semi.py', '../_base_/models/tiny_cnn.py',
]
model = dict(
    type='SupervisedOnly',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
)
# Unlabeled images are not needed: batches hold B labeled images only.
train_dataloader = dict(
    batch_size={{_base_.labeled_batch_size}},
    sampler=dict(type='SemiSampler', labeled_batch_size={{_base_.labeled_batch_size}},
                 unlabeled_ratio=0))
