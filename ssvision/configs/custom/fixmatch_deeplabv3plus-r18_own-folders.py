# Semi-supervised segmentation of your own images: a few images with masks, a folder of
# images without masks (FixMatch weak-to-strong with per-pixel threshold and CutMix).
#
#   data_root/
#     labeled/images/<name>.jpg|.png   labeled images
#     labeled/masks/<name>.png         their class maps: one class id per pixel, 0 ..
#                                      num_classes - 1, 255 = ignore (gray or palette PNG)
#     unlabeled/**/*.jpg               any number of images, at any depth, no masks
#     val/images/, val/masks/          optional: held-out labeled images to score
#
# Set data_root and num_classes below (classes names them in the logs), then:
# python tools/train.py <this config>. Every knob of the next block may be set in a
# config that inherits this one, or with --cfg-options: the values below read them as
# '${NAME}' when the run is built.
# Without a val/ folder the labeled images are scored: that checks that training runs,
# it does not measure accuracy; set val_root = '${data_root}/val' when you have one.
# Images may differ in size and channels (gray, RGBA and 16-bit files are read as 8-bit
# RGB); each view is a random rescale (scale_range of the image's own size) and a crop of
# crop pixels, so photos much larger than about 2 x crop are best shrunk beforehand.
# Validation runs on whole images, one at a time.
# An unreadable unlabeled file is skipped and counted (one warning names the first few);
# an unreadable labeled image or mask is an error naming it (docs/own_data.md).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py']

data_root = 'data/own_seg'
num_classes = 2
classes = None  # e.g. ('background', 'road'); None names them '0', '1', ...
val_root = '${data_root}/labeled'
crop = (256, 256)
labeled_batch_size = 4
unlabeled_ratio = 1

# DeepLabV3+ over a timm ResNet-18, randomly initialised (no download); pretrained=True
# (internet or timm's cache) starts the backbone from ImageNet.
model = dict(
    type='FixMatch',
    model=dict(type='DeepLabV3Plus', backbone='resnet18', num_classes='${num_classes}',
               output_stride=16, aspp_channels=128, decoder_channels=128, dropout=0.1,
               pretrained=False),
    task=dict(type='SegmentationTask', ignore_index=255),
    data_preprocessor=dict(type='SemiDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375)),
    selector=dict(type='FixedThresholdSelector', threshold=0.95),
    semi_train_cfg=dict(unsup_weight=1.0, cutmix_prob=0.5),
)
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=1e-4))

# The weak geometry runs once per image, before the branches, so all views of an image
# share it; strong views add photometric changes only. Unlabeled images have no mask:
# their label maps are all ignore (255), so no pseudo-label accuracy is logged for them.
weak = [dict(type='SegWeakAugment', scale_range=(0.5, 2.0), crop_size='${crop}',
             flip_prob=0.5)]
strong = [dict(type='SegStrongAugment', color_jitter_prob=0.8, grayscale_prob=0.2,
               blur_prob=0.5)]
pack = [dict(type='PackSegInputs')]

labeled_pipeline = weak + [dict(type='MultiBranch', branches=dict(sup=pack))]
unlabeled_pipeline = weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=pack, unsup_student=strong + pack))
]

img_suffix = ('.jpg', '.jpeg', '.png', '.JPG', '.JPEG', '.PNG')
train_dataloader = dict(
    batch_size='${labeled_batch_size * (1 + unlabeled_ratio)}',
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size='${labeled_batch_size}',
                 unlabeled_ratio='${unlabeled_ratio}'),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(type='VOCSegDataset', data_root='${data_root}/labeled',
                     img_dir='images', ann_dir='masks', img_suffix=img_suffix,
                     subset='labeled', num_classes='${num_classes}', classes='${classes}',
                     check_masks=True,
                     pipeline=labeled_pipeline),
        unlabeled=dict(type='UnlabeledSegFolder', root='${data_root}/unlabeled',
                       pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='VOCSegDataset', data_root='${val_root}', img_dir='images',
                 ann_dir='masks', img_suffix=img_suffix, num_classes='${num_classes}',
                 classes='${classes}', pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SegIoU', num_classes='${num_classes}')
test_evaluator = val_evaluator
