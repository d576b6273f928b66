_base_ = ['../fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FlexMatch = FixMatch's loss with curriculum class thresholds; the selector's
# per-sample state is sized from the unlabeled dataset by the train loop.
model = dict(selector=dict(_delete_=True, type='FlexMatchSelector', num_classes=10,
                           threshold=0.95, warmup=True, mapping='convex'))
