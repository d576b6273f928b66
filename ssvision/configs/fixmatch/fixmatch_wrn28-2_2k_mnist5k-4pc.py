# FixMatch with the field's standard network, WRN-28-2 (BatchNorm momentum 0.001, as in
# FixMatch and USB), on MNIST-5k with 4 labels per class; B = 16, mu = 7 (USB's setting).
# The teacher takes pseudo-labels with batch statistics (semi_train_cfg.teacher_bn='auto'
# does so for the first 2,995 iterations at momentum 0.001): with running statistics it
# collapses to one class (BENCHMARKS.md, "WRN-28-2 FixMatch beside USB").
_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
labeled_batch_size = 16
unlabeled_ratio = 7
model = dict(
    model=dict(_delete_=True, type='WideResNet', num_classes=10, depth=28, widen_factor=2,
               in_channels=1, drop_rate=0.0, bn_momentum=0.001))
train_dataloader = dict(
    batch_size=labeled_batch_size * (1 + unlabeled_ratio),
    sampler=dict(labeled_batch_size=labeled_batch_size, unlabeled_ratio=unlabeled_ratio))
# Validation after re-estimating BatchNorm statistics of teacher and student on the last
# 10 training batches: at momentum 0.001 the running statistics lag for thousands of
# steps (the teacher's EMA of them even more), and eval-mode accuracy would show that
# lag rather than what the networks learnt.
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.99, ramp=True),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=5),
    dict(type='HealthAlarmHook', interval=50),
    dict(type='BNRecalibrationHook', num_batches=10),
]
