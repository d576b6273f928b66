# Semi-supervised detection on your own images: a COCO json for the labeled images, a
# plain folder of unlabeled ones (mean-teacher RetinaNet, class-aware score thresholds).
#
#   data_root/
#     annotations.json     COCO json of the labeled images: images (id, file_name,
#                          width, height), annotations (bbox = x, y, w, h in pixels),
#                          categories (the classes, in this order)
#     images/              the labeled images (file_name is relative to this folder)
#     unlabeled/**/*.jpg   any number of images, at any depth, no json
#     val/annotations.json, val/images/   optional: held-out labeled images to score
#
# Set data_root and num_classes (the json's number of categories) below, then:
# python tools/train.py <this config>. Every knob of the next block may be set in a
# config that inherits this one, or with --cfg-options: the values below read them as
# '${NAME}' when the run is built.
# Without a val/ folder the labeled images are scored: that checks that training runs,
# it does not measure accuracy; set val_root = '${data_root}/val' when you have one.
# Annotations are checked when the data is built: crowd, malformed, negative-size,
# sub-pixel and out-of-image boxes are not trained on, counted by reason in one log line.
# Images may differ in size and channels (gray, RGBA and 16-bit files are read as 8-bit
# RGB); the detector resizes every view (short side min_size, long side <= max_size).
# An unreadable unlabeled file is skipped and counted (one warning names the first few);
# an unreadable labeled image is an error naming it (docs/own_data.md).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/sgd_det_2k.py']

data_root = 'data/own_coco'
num_classes = 3
val_root = '${data_root}'
short_side = 512
labeled_batch_size = 2
unlabeled_ratio = 1

# RetinaNet, torchvision ResNet-18 FPN, randomly initialised (no download): set
# detector.backbone_checkpoint='torchvision://ResNet18_Weights.IMAGENET1K_V1' to start
# from ImageNet (internet or torch's cache). score_thresh 0.01 lets the young one-stage
# teacher's low scores through for the class-aware selector to rank.
detector = dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18',
                num_classes='${num_classes}', min_size='${short_side}',
                max_size='${short_side * 5 // 3}',
                score_thresh=0.01, detections_per_img=100)
model = dict(type='SemiDetector', detector=detector,
             selector=dict(type='ClassAwareBoxSelector', mode='prior',
                           num_classes='${num_classes}', ratio=0.5, floor=0.1, ceil=0.9,
                           min_score=0.02),
             semi_train_cfg=dict(unsup_weight=1.0, burn_in_iters=200, reg_uncertainty=0.1))

# The weak geometry (resize + flip) runs once per image, before the branches; the
# student's strong view adds colour ops, a random affine and cutout, each geometric op
# recording its matrix so the teacher's boxes move into the student's view. Unlabeled
# images have no boxes (no pseudo-box precision is logged for them).
weak = [dict(type='DetWeakAugment', short_side=('${short_side * 7 // 8}',
                                               '${short_side * 9 // 8}'),
             max_long_side='${short_side * 2}', flip_prob=0.5)]
strong = [dict(type='PhotometricAugment', color_jitter_prob=0.8, grayscale_prob=0.2,
               blur_prob=0.3),
          dict(type='DetStrongAugment', affine_prob=0.7, scale=(0.75, 1.25), translate=0.1,
               cutout_prob=0.7)]
pack = [dict(type='PackDetInputs')]

labeled_pipeline = weak + [dict(type='MultiBranch', branches=dict(sup=pack))]
unlabeled_pipeline = weak + [
    dict(type='MultiBranch', branches=dict(unsup_teacher=pack, unsup_student=strong + pack))
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
        labeled=dict(type='CocoDetDataset', ann_file='${data_root}/annotations.json',
                     img_dir='${data_root}/images', subset='labeled',
                     pipeline=labeled_pipeline),
        unlabeled=dict(type='UnlabeledDetFolder', root='${data_root}/unlabeled',
                       pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='CocoDetDataset', ann_file='${val_root}/annotations.json',
                 img_dir='${val_root}/images', pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoDetMetric', ann_file='${val_root}/annotations.json')
test_evaluator = val_evaluator
