_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_1m.py',
    '../_base_/datasets/cifar10_semi.py', '../_base_/models/wrn28_2.py',
]
model = dict(
    type='FixMatch',
    model={{_base_.model_net}},
    data_preprocessor={{_base_.data_preprocessor}},
    selector=dict(type='FixedThresholdSelector', threshold=0.95),
)
# The published schedule's teacher momentum (long schedule).
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.999, ramp=True),
    dict(type='ResumeStateHook'),
    dict(type='SelectionStatsHook', window=5),
    dict(type='HealthAlarmHook', interval=50),
    # BN momentum 0.001: re-estimate BN statistics before validation (BENCHMARKS.md)
    dict(type='BNRecalibrationHook', num_batches=10),
]
default_hooks = dict(checkpoint=dict(interval=5000))
