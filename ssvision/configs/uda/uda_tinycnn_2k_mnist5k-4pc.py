_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/mnist5k_semi.py', '../_base_/models/tiny_cnn.py',
]
# UDA: KL from the teacher's sharpened (T = 0.4) weak-view distribution to the strong
# view, on samples whose top probability reaches 0.8 (the published CIFAR-10 / SVHN
# values). Training-signal annealing with the exp schedule, which the UDA paper
# suggests when few labels make overfitting likely (40 labels here); its CIFAR
# scripts run without TSA (tsa='none').
model = dict(
    type='UDA',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='FixedThresholdSelector', threshold=0.8),
    semi_train_cfg=dict(unsup_weight=1.0, temperature=0.4, tsa='exp'),
)
