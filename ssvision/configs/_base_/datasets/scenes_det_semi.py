# Built-in detection scenes (tools/prepare_data.py --scenes-only --det-scenes): Fashion-MNIST
# items on real photos, 128x128, 10 classes, exact boxes, COCO json.
num_classes = 10
data_root = 'data/scenes/det_fashion'
labeled_ann = 'data/scenes/det_fashion/splits/annotations.1@10.json'
unlabeled_ann = 'data/scenes/det_fashion/splits/annotations.1@10-unlabeled.json'
img_dir = 'data/scenes/det_fashion/train/images'
val_ann = 'data/scenes/det_fashion/val/annotations.json'
labeled_batch_size = 4
unlabeled_ratio = 1

# The weak geometry (resize + flip) runs once per image, before the branches; the
# student's strong view adds colour ops, a random affine and cutout, each geometric op
# recording its matrix so teacher boxes are moved into the student's view.
weak = [dict(type='DetWeakAugment', short_side=(112, 144), flip_prob=0.5)]
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
    batch_size=labeled_batch_size * (1 + unlabeled_ratio),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SemiSampler', labeled_batch_size=labeled_batch_size,
                 unlabeled_ratio=unlabeled_ratio),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(
        type='SemiDataset',
        labeled=dict(type='CocoDetDataset', ann_file=labeled_ann, img_dir=img_dir,
                     subset='labeled', pipeline=labeled_pipeline),
        unlabeled=dict(type='CocoDetDataset', ann_file=unlabeled_ann, img_dir=img_dir,
                       subset='unlabeled', pipeline=unlabeled_pipeline),
    ),
)
val_dataloader = dict(
    batch_size=10,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ssvision.semi_collate'),
    dataset=dict(type='CocoDetDataset', ann_file=val_ann, pipeline=pack),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoDetMetric', ann_file=val_ann)
test_evaluator = val_evaluator
