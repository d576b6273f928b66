_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch + RotNet (whole-image rotation prediction, RotationHead) at LoRot's weight 0.1:
# the baseline LoRot (fixmatch-lorot_...) is compared against.
model = dict(aux_heads=[dict(type='RotationHead', loss_weight=0.1)])
