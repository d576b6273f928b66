model_net = dict(type='TinyCNN', num_classes=10, in_channels=1, width=32)
data_preprocessor = dict(type='SemiDataPreprocessor', mean=(127.5,), std=(127.5,))
