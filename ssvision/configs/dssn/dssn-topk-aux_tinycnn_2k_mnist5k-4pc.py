_base_ = ['./dssn-topk_tinycnn_2k_mnist5k-4pc.py']
# ssvision's DSSN variant (DSSNTopK) plus contrastive deep supervision and rotation prediction.
model = dict(aux_heads=[
    dict(type='DualSiameseConsistencyHead', loss_weight=1.0),
    dict(type='DeepSupervisionContrastHead', stages=(0, 1), loss_weight=0.5),
    dict(type='RotationHead', loss_weight=0.5, views=('sup', 'unsup_teacher'), max_images=64),
])
