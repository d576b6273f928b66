_base_ = ['./fixmatch_tinycnn_2k_mnist5k-4pc.py']
# FixMatch + LoRot-E (localizable rotation: one quadrant rotated, 16-way rotation x
# quadrant head, weight 0.1 as in LoRot's code) on the labeled images and as many
# weak unlabeled views as fill 64 images.
model = dict(aux_heads=[
    dict(type='LocalRotationHead', variant='E', loss_weight=0.1,
         views=('sup', 'unsup_teacher'), max_images=64),
])
