_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch learning from the future, deeper (FST-D): pseudo-labels from the teacher
# after 3 virtual steps (the FST paper's ahead_step=3); 4 training steps per iteration.
model = dict(semi_train_cfg=dict(look_ahead=True, look_ahead_steps=3))
