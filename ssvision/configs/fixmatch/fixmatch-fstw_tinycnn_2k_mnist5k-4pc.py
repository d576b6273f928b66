_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch learning from the future, wider (FST-W): the future teacher takes the average
# of 3 virtual students (the FST paper's width), each on a third of the unlabeled batch.
model = dict(semi_train_cfg=dict(look_ahead=True, look_ahead_width=3))
