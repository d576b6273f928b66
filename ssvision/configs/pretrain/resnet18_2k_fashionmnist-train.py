# A pretrained start that can be built here (model zoo entry resnet18_fashionmnist-gray):
# a timm / torchvision-layout ResNet-18 trained with labels on the 60,000 Fashion-MNIST
# training images (1 channel, 28x28). The built-in scenes paste Fashion-MNIST items on
# photos and take their validation items from t10k only, so this backbone never sees an
# item the scene benchmarks are scored on. tools/zoo.py build publishes its teacher in
# torchvision classifier layout (conv1..layer4, fc); loaders adapt conv1 to 3 channels.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/schedules/sgd_cosine_2k.py',
    '../_base_/datasets/fashion_mnist_semi.py',
]
model = dict(
    type='SupervisedOnly',
    model=dict(type='TimmClassifier', model_name='resnet18', num_classes=10, in_channels=1),
    data_preprocessor=dict(type='SemiDataPreprocessor', mean=(127.5,), std=(127.5,)),
)
# every training image is labeled; batches hold B labeled images only
train_dataloader = dict(
    batch_size=64,
    sampler=dict(type='SemiSampler', labeled_batch_size=64, unlabeled_ratio=0),
    dataset=dict(labeled=dict(split_file=None, subset=None),
                 unlabeled=dict(split_file=None, subset=None)))
optim_wrapper = dict(optimizer=dict(lr=0.05))
