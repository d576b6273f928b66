default_scope = 'ssvision'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True),
)
# Teacher = EMA of the student (ssvision's one convention, see EMATeacherHook);
# ResumeStateHook makes checkpoints exact to resume and weights_only-loadable.
# momentum 0.99 suits these 2k-iteration CPU schedules: on MNIST-5k with 40 labels,
# FixMatch's teacher reached 69.1 % top-1 after 500 iterations with 0.99 and 54.8 %
# with 0.999, which lags the fast-moving early student (BENCHMARKS.md). Long GPU
# schedules use 0.999.
custom_hooks = [
    dict(type='EMATeacherHook', momentum=0.99, ramp=True),
    dict(type='ResumeStateHook'),
    # writes selection_stats.png (per-class selection rates, thresholds, pseudo-label
    # accuracy over time) into the work dir at the end of training
    dict(type='SelectionStatsHook', window=5),
    # warns (with the iteration) on a one-class teacher, a supervised loss that grows
    # several-fold once the unlabeled loss starts, and a teacher equal to the student
    dict(type='HealthAlarmHook', interval=50),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # no backend: tools/train.py picks NCCL with CUDA and Gloo on CPUs (set one to force it)
    dist_cfg=dict(),
)
# Means of the last 50 logged values for losses, timings and every pseudo-label health
# figure (mmengine's default averages only losses and timings and logs the rest as the
# value of the logging iteration alone); lr, EMA momentum and thresholds (box_thr_*,
# thr_*, FreeMatch's sel_global, SoftMatch's sel_mu / sel_sigma) stay current.
# SemiLogProcessor keeps per-class figures (sel_n_<c>, thr_<c>, recall_<c>, ...) in
# scalars.json / TensorBoard and off the console line (console_per_class=True prints them).
log_processor = dict(
    type='SemiLogProcessor', by_epoch=False, window_size=50,
    mean_pattern=r'loss|time|grad_norm|'
                 r'^(?!sel_(global|mu|sigma)$)(pb_|cand_|sel_|pl_|teacher_conf|unsup\.|sup\.)')
log_level = 'INFO'
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
