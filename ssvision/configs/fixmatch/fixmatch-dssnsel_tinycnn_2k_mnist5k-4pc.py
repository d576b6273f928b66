_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch with DSSN's class-aware selection: per batch, each class keeps the top half
# of the predictions made for it, if at least 0.5 confident.
model = dict(selector=dict(_delete_=True, type='ClassAwareTopKSelector', ratio=0.5,
                           floor=0.5))
