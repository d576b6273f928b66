_base_ = ['./fixmatch_deeplabv3plus-r18_300_binscenes-n4.py']
# FixMatch (one strong view, no auxiliary head) with DSSN's class-aware selection in
# place of the global 0.95 threshold: each class keeps the top half of the pixels the
# teacher gives it in each image (at most its labeled share, prior=True). The one-factor
# ablation between FixMatch and DSSN on the binary scenes, where 0.95 keeps almost no
# foreground pixel for the first half of the run.
model = dict(selector=dict(_delete_=True, type='ClassAwareTopKSelector', ratio=0.5,
                           floor=0.5, scope='image', prior=True, num_classes=2))
