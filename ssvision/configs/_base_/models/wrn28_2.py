# WRN-28-2, the field's standard network for 32x32 inputs (FixMatch, USB).
model_net = dict(type='WideResNet', num_classes=10, depth=28, widen_factor=2, in_channels=3,
                 drop_rate=0.0, bn_momentum=0.001)
# CIFAR-10 channel statistics (0..255 units).
data_preprocessor = dict(type='SemiDataPreprocessor', mean=(125.3, 123.0, 113.9),
                         std=(63.0, 62.1, 66.7))
