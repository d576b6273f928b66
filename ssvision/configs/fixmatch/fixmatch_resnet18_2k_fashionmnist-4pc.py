_base_ = ['./fixmatch_tinycnn_2k_fashionmnist-4pc.py']
# A timm backbone: resnet18 on 1-channel 28x28 images. For fine-tuning from local
# weights set model.model.checkpoint='path/to/resnet18.pth' (loaded weights_only).
model = dict(model=dict(_delete_=True, type='TimmClassifier', model_name='resnet18',
                        num_classes=10, in_channels=1, pretrained=False))
