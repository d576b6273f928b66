_base_ = ['../fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py']
# ShrinkMatch = FixMatch on confident samples + the shrunk-class-space loss (auxiliary
# MLP classifier on the strong view's features) on the others; the authors' defaults:
# threshold 0.95 for both, certain-ratio momentum 0.999, weight 1. The certain ratio
# starts at the first batch's selected fraction (about 0 here) and with 0.999 takes
# ~1,000 iterations to follow it, so the shrink loss stays small for half of this
# 2k schedule (in a trial run the ratio was 0.006 at iteration 300).
model = dict(
    type='ShrinkMatch',
    shrink_head=dict(threshold=0.95, certain_momentum=0.999, mlp=True, loss_weight=1.0),
)
