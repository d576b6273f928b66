# DeepLabV3+ over a timm resnet18 (randomly initialised: no download here; set
# model_net.checkpoint to a local ImageNet resnet18 file to fine-tune).
model_net = dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=11, output_stride=16,
                 aspp_channels=128, decoder_channels=128, dropout=0.1)
data_preprocessor = dict(type='SemiDataPreprocessor', mean=(123.7, 116.3, 103.5),
                         std=(58.4, 57.1, 57.4))
task = dict(type='SegmentationTask', ignore_index=255)
