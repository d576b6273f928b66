# DeepLabV3+ over a timm resnet18 for two classes (foreground / background).
_base_ = ['./deeplabv3plus_r18.py']
model_net = dict(num_classes=2)
