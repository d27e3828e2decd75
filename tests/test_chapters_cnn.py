"""The modern CNN chapters (7.1-7.7) and the multi-GPU concise chapter (12.6) in the book's style, with
``from fmnist import d2l``: each network built as its chapter builds it, its layer shapes checked
by hand, then trained by d2l.train_ch6 for one epoch on a tiny dataset (8 training and 4 test
images) at the chapter's resize, so that the suite stays fast.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_small_dataset
from torch import nn
from torch.nn import functional as F

from fmnist import d2l

pytestmark = pytest.mark.usefixtures("headless")


@pytest.fixture
def small_arrays():
    """Overrides conftest's: 8 training and 4 test images, so that 224 x 224 networks train in a second."""
    return make_small_dataset(n_train=8, n_test=4)


def _train_one_epoch(net, batch_size, lr, resize, capsys):
    """The chapters' two lines, for one epoch; returns the input shapes the net saw and the printed lines."""
    seen = []
    net.register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape)))
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=resize)
    before = [p.detach().clone() for p in net.parameters()]
    d2l.train_ch6(net, train_iter, test_iter, 1, lr, d2l.try_gpu())
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    size = (resize, resize) if isinstance(resize, int) else resize
    assert seen[0] == (min(batch_size, 8), 1, *size)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training on cpu" and out[-2].endswith("examples/sec on cpu")
    loss, train_acc, test_acc = (float(part.split()[-1]) for part in out[-3].split(","))
    assert loss > 0 and 0 <= train_acc <= 1 and 0 <= test_acc <= 1
    return seen


def _shapes(net, X):
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append(tuple(X.shape))
    return shapes


def test_ch7_1_alexnet(small_data, capsys):
    net = nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10),
    )  # fmt: skip
    shapes = _shapes(net, torch.randn(1, 1, 224, 224))
    assert shapes[0] == (1, 96, 54, 54) and shapes[12] == (1, 256, 5, 5) and shapes[-1] == (1, 10)
    _train_one_epoch(net, batch_size=128, lr=0.01, resize=224, capsys=capsys)


def test_ch7_2_vgg(small_data, capsys):
    def vgg_block(num_convs, in_channels, out_channels):
        layers = []
        for _ in range(num_convs):
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = out_channels
        return nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))

    def vgg(conv_arch):
        blocks, in_channels = [], 1
        for num_convs, out_channels in conv_arch:
            blocks.append(vgg_block(num_convs, in_channels, out_channels))
            in_channels = out_channels
        return nn.Sequential(
            *blocks, nn.Flatten(),
            nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 10),
        )  # fmt: skip

    conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    ratio = 4
    small_conv_arch = [(pair[0], pair[1] // ratio) for pair in conv_arch]
    net = vgg(small_conv_arch)
    assert _shapes(net, torch.randn(size=(1, 1, 224, 224)))[4] == (1, 128, 7, 7)
    _train_one_epoch(net, batch_size=128, lr=0.05, resize=224, capsys=capsys)


def test_ch7_3_nin(small_data, capsys):
    def nin_block(in_channels, out_channels, kernel_size, strides, padding):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        )  # fmt: skip

    net = nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0), nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2), nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1), nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5), nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
    )  # fmt: skip
    shapes = _shapes(net, torch.rand(size=(1, 1, 224, 224)))
    assert shapes[0] == (1, 96, 54, 54) and shapes[5] == (1, 384, 5, 5) and shapes[-1] == (1, 10)
    _train_one_epoch(net, batch_size=128, lr=0.1, resize=224, capsys=capsys)


def test_ch7_4_googlenet(small_data, capsys):
    class Inception(nn.Module):
        def __init__(self, in_channels, c1, c2, c3, c4):
            super().__init__()
            self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
            self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
            self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
            self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
            self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
            self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
            self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

        def forward(self, x):
            p1 = F.relu(self.p1_1(x))
            p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
            p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
            p4 = F.relu(self.p4_2(self.p4_1(x)))
            return torch.cat((p1, p2, p3, p4), dim=1)

    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(), nn.Conv2d(64, 192, kernel_size=3, padding=1),
                       nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b5 = nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128),
                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())  # fmt: skip
    net = nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))
    shapes = _shapes(net, torch.rand(size=(1, 1, 96, 96)))
    assert shapes == [(1, 64, 24, 24), (1, 192, 12, 12), (1, 480, 6, 6), (1, 832, 3, 3), (1, 1024), (1, 10)]
    _train_one_epoch(net, batch_size=128, lr=0.1, resize=96, capsys=capsys)


def test_ch7_5_batch_norm(small_data, capsys):
    def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
        if not torch.is_grad_enabled():  # prediction: the moving statistics
            X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        else:
            dims = (0,) if X.dim() == 2 else (0, 2, 3)
            mean = X.mean(dim=dims, keepdim=True)
            var = ((X - mean) ** 2).mean(dim=dims, keepdim=True)
            X_hat = (X - mean) / torch.sqrt(var + eps)
            moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
            moving_var = momentum * moving_var + (1.0 - momentum) * var
        return gamma * X_hat + beta, moving_mean.data, moving_var.data

    class BatchNorm(nn.Module):
        def __init__(self, num_features, num_dims):
            super().__init__()
            shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
            self.gamma = nn.Parameter(torch.ones(shape))
            self.beta = nn.Parameter(torch.zeros(shape))
            self.moving_mean = torch.zeros(shape)
            self.moving_var = torch.ones(shape)

        def forward(self, X):
            if self.moving_mean.device != X.device:
                self.moving_mean, self.moving_var = self.moving_mean.to(X.device), self.moving_var.to(X.device)
            Y, self.moving_mean, self.moving_var = batch_norm(X, self.gamma, self.beta, self.moving_mean,
                                                              self.moving_var, eps=1e-5, momentum=0.9)  # fmt: skip
            return Y

    X = torch.randn(8, 3, 5, 5) * 3 + 1  # the scratch layer in training mode against PyTorch's
    assert torch.allclose(BatchNorm(3, 4)(X), nn.BatchNorm2d(3)(X), atol=1e-5)

    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), BatchNorm(6, num_dims=4), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), BatchNorm(16, num_dims=4), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 120), BatchNorm(120, num_dims=2), nn.Sigmoid(),
        nn.Linear(120, 84), BatchNorm(84, num_dims=2), nn.Sigmoid(), nn.Linear(84, 10),
    )  # fmt: skip
    lr, batch_size = 1.0, 4
    _train_one_epoch(net, batch_size, lr, resize=(28, 28), capsys=capsys)
    gamma, beta = net[1].gamma.reshape((-1,)), net[1].beta.reshape((-1,))
    assert gamma.shape == beta.shape == (6,) and not torch.equal(gamma, torch.ones(6))
    # d2l evaluates without gradients, so the scratch layers used their moving statistics:
    # the test accuracy is that of the net under no_grad.
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    with torch.no_grad():
        expected = (net(test_iter.images).argmax(1) == test_iter.labels).double().mean().item()
    assert d2l.evaluate_accuracy_gpu(net, test_iter) == expected

    concise = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10),
    )  # fmt: skip
    d2l.train_ch6(concise, train_iter, test_iter, 1, lr, d2l.try_gpu())
    assert not concise.training and capsys.readouterr().out.startswith("training on cpu")


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    """Chapter 7.6's stage of residual blocks (12.6 uses the same), a list of d2l.Residual."""
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(d2l.Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(d2l.Residual(num_channels, num_channels))
    return blk


def _resnet(in_channels=1):
    b1 = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


def test_ch7_6_resnet(small_data, capsys):
    blk = d2l.Residual(3, 3)
    X = torch.rand(4, 3, 6, 6)
    assert blk(X).shape == (4, 3, 6, 6)
    assert d2l.Residual(3, 6, use_1x1conv=True, strides=2)(X).shape == (4, 6, 3, 3)
    net = _resnet()
    shapes = _shapes(net, torch.rand(size=(1, 1, 224, 224)))
    assert shapes[:5] == [(1, 64, 56, 56), (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    _train_one_epoch(net, batch_size=256, lr=0.05, resize=96, capsys=capsys)


def test_ch7_7_densenet(small_data, capsys):
    def conv_block(input_channels, num_channels):
        return nn.Sequential(nn.BatchNorm2d(input_channels), nn.ReLU(),
                             nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))  # fmt: skip

    class DenseBlock(nn.Module):
        def __init__(self, num_convs, input_channels, num_channels):
            super().__init__()
            self.net = nn.Sequential(*(conv_block(num_channels * i + input_channels, num_channels)
                                       for i in range(num_convs)))  # fmt: skip

        def forward(self, X):
            for blk in self.net:
                X = torch.cat((X, blk(X)), dim=1)
            return X

    def transition_block(input_channels, num_channels):
        return nn.Sequential(
            nn.BatchNorm2d(input_channels),
            nn.ReLU(),
            nn.Conv2d(input_channels, num_channels, kernel_size=1),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )

    Y = DenseBlock(2, 3, 10)(torch.randn(4, 3, 8, 8))
    assert Y.shape == (4, 23, 8, 8) and transition_block(23, 10)(Y).shape == (4, 10, 4, 4)

    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    num_channels, growth_rate = 64, 32
    blks = []
    for i, num_convs in enumerate([4, 4, 4, 4]):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != 3:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    net = nn.Sequential(b1, *blks, nn.BatchNorm2d(num_channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
                        nn.Flatten(), nn.Linear(num_channels, 10))  # fmt: skip
    assert num_channels == 248
    _train_one_epoch(net, batch_size=256, lr=0.1, resize=96, capsys=capsys)


def test_ch12_6_data_parallel_concise(small_data, capsys):
    def resnet18(num_classes, in_channels=1):
        net = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(64), nn.ReLU()
        )
        net.add_module("resnet_block1", nn.Sequential(*resnet_block(64, 64, 2, first_block=True)))
        net.add_module("resnet_block2", nn.Sequential(*resnet_block(64, 128, 2)))
        net.add_module("resnet_block3", nn.Sequential(*resnet_block(128, 256, 2)))
        net.add_module("resnet_block4", nn.Sequential(*resnet_block(256, 512, 2)))
        net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
        net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
        return net

    net = resnet18(10)
    devices = d2l.try_all_gpus()

    def train(net, num_gpus, batch_size, lr, num_epochs=2):
        train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
        devices = [d2l.try_gpu(i) for i in range(num_gpus)]

        def init_weights(m):
            if type(m) in [nn.Linear, nn.Conv2d]:
                nn.init.normal_(m.weight, std=0.01)

        net.apply(init_weights)
        net = nn.DataParallel(net, device_ids=devices)
        trainer = torch.optim.SGD(net.parameters(), lr)
        loss = nn.CrossEntropyLoss()
        timer = d2l.Timer()
        animator = d2l.Animator("epoch", "test acc", xlim=[1, num_epochs])
        for epoch in range(num_epochs):
            net.train()
            timer.start()
            for X, y in train_iter:
                trainer.zero_grad()
                X, y = X.to(devices[0]), y.to(devices[0])
                loss(net(X), y).backward()
                trainer.step()
            timer.stop()
            animator.add(epoch + 1, (d2l.evaluate_accuracy_gpu(net, test_iter),))
        with torch.no_grad():
            expected = (net(test_iter.images).argmax(1) == test_iter.labels).double().mean().item()
        assert animator.Y[0][-1] == expected and not net.training
        return f"test acc: {animator.Y[0][-1]:.2f}, {timer.avg():.1f} sec/epoch on {str(devices)}"

    assert train(net, num_gpus=len(devices), batch_size=8, lr=0.1).startswith("test acc: ")
