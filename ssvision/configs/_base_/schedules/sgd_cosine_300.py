# A short schedule for small CPU runs (the binary scenes): cosine decay over 300 iterations.
_base_ = ['./sgd_cosine_2k.py']
max_iters = 300
train_cfg = dict(val_interval=150)
