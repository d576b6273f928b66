# FixMatch on your own images: a few labeled images per class, a folder of unlabeled ones.
#
#   data_root/
#     labeled/<class>/**/*.jpg   a few labeled images per class (the class is the folder name)
#     unlabeled/**/*.jpg         any number of images, at any depth, no classes
#     val/<class>/**/*.jpg       optional: held-out labeled images to score
#
# Set data_root below (and num_classes to the number of class folders; a mismatch stops
# training with both numbers), then: python tools/train.py <this config>. Every knob of
# the next block (data_root, val_root, num_classes, img_size, the batch, max_iters) may
# be set in a config that inherits this one, or with --cfg-options: the values below
# read them as '${NAME}' when the run is built.
# Without a val/ folder the labeled images are scored: that checks that training runs,
# it does not measure accuracy; set val_root = '${data_root}/val' when you have one.
# Files may be .jpg .jpeg .png .bmp .ppm .pgm .tif .tiff .webp of any size; gray, RGBA and
# 16-bit files are read as 8-bit RGB, and every image is resized to img_size (centre crop).
# An unreadable unlabeled file is skipped and counted (one warning names the first few);
# an unreadable labeled file is an error naming it (docs/own_data.md).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py']

data_root = 'data/own_images'
num_classes = 2
val_root = '${data_root}/labeled'
# Sized for a GPU (16 labeled + 112 unlabeled images of 128 x 128 per step); on a CPU
# lower img_size and labeled_batch_size (2 cores: about 5 s per step at 2 + 14 images).
img_size = 128
labeled_batch_size = 16
unlabeled_ratio = 7

# ResNet-18, randomly initialised (no download). With internet access (or timm's cache)
# pretrained=True starts from ImageNet weights, which few labels need most.
model = dict(
    type='FixMatch',
    model=dict(type='TimmClassifier', model_name='resnet18', num_classes='${num_classes}',
               in_channels=3, pretrained=False),
    data_preprocessor=dict(type='SemiDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375)),
    selector=dict(type='FixedThresholdSelector', threshold=0.95),
    semi_train_cfg=dict(unsup_weight=1.0),
)

# One size for every image, once, before the views; then FixMatch's weak view (flip,
# translate) and strong view (weak + RandAugment + Cutout).
resize = [dict(type='ResizeImage', size='${img_size}', fit='crop')]
weak = [dict(type='WeakAugment', flip_prob=0.5, pad_ratio=0.125)]
strong = weak + [dict(type='RandAugment', num_ops=2, magnitude=10, cutout_ratio=0.5)]
pack = [dict(type='PackClsInputs')]

labeled_pipeline = resize + [dict(type='MultiBranch', branches=dict(sup=weak + pack))]
unlabeled_pipeline = resize + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=weak + pack, unsup_student=strong + pack))
]

train_dataloader = dict(
    batch_size='${labeled_batch_size * (1 + unlabeled_ratio)}',
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size='${labeled_batch_size}',
                 unlabeled_ratio='${unlabeled_ratio}'),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        # labeled files are decoded once at build: an unreadable one stops the build, named
        labeled=dict(type='ImageFolder', root='${data_root}/labeled', pipeline=labeled_pipeline),
        unlabeled=dict(type='UnlabeledImageFolder', root='${data_root}/unlabeled',
                       pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='ImageFolder', root='${val_root}', pipeline=resize + pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='SemiAccuracy')
test_evaluator = val_evaluator
