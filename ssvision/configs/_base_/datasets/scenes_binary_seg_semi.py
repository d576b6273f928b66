# Built-in binary scenes (tools/prepare_data.py --binary-scenes): 3-6 Fashion-MNIST items
# on real photos, 128x128, foreground (1) vs background (0), items cover about 18 % of
# the pixels; 200 training scenes (4 or 8 labeled), 100 validation scenes.
_base_ = ['./scenes_seg_semi.py']
num_classes = 2
classes = ('background', 'object')
data_root = 'data/scenes/seg_binary/train'
split_file = 'data/scenes/seg_binary/splits/split_n4_seed0.json'
_data = dict(data_root=data_root, split_file=split_file, num_classes=num_classes,
             classes=classes)
train_dataloader = dict(dataset=dict(labeled=_data, unlabeled=_data))
val_dataloader = dict(dataset=dict(data_root='data/scenes/seg_binary/val',
                                   num_classes=num_classes, classes=classes))
test_dataloader = val_dataloader
val_evaluator = dict(type='SegIoU', num_classes=num_classes)
test_evaluator = val_evaluator
