# Faster R-CNN, timm-free torchvision ResNet-18 FPN, random init with trainable BN (no
# downloads here; set detector.backbone_checkpoint to a local ImageNet resnet18 file, or
# detector.checkpoint to a torchvision detector file, to fine-tune). Anchors sized for
# 20-60 px objects in 128 px images.
detector = dict(type='TorchvisionDetector', arch='fasterrcnn', backbone='resnet18',
                num_classes=10, min_size=128, max_size=128, anchor_sizes=(16, 32, 64, 128, 256),
                box_score_thresh=0.05, box_detections_per_img=50)
