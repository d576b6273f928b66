# RetinaNet (one-stage), torchvision ResNet-18 FPN (P3-P7), random init, trainable BN.
# score_thresh 0.01: a one-stage teacher's sigmoid scores start far below 0.05 (prior
# 0.01), so its candidates must be let through for the class-aware selector to rank.
detector = dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18',
                num_classes=10, min_size=128, max_size=128, anchor_sizes=(16, 32, 64, 128, 256),
                score_thresh=0.01, detections_per_img=50)
