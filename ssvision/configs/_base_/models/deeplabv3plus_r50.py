# DeepLabV3+ over a timm resnet50, output stride 16. Set model_net.checkpoint to a local
# ImageNet resnet50 file (weights-only load) to fine-tune, as every published result does.
model_net = dict(type='DeepLabV3Plus', backbone='resnet50', num_classes=19, output_stride=16,
                 aspp_channels=256, decoder_channels=256, dropout=0.1)
data_preprocessor = dict(type='SemiDataPreprocessor', mean=(123.7, 116.3, 103.5),
                         std=(58.4, 57.1, 57.4))
# validation on full 1024x2048 images with overlapping crop-sized windows
task = dict(type='SegmentationTask', ignore_index=255,
            test_cfg=dict(mode='slide', window=(801, 801), stride=(534, 534)))
