"""d2l.ai 3.7 "Concise Implementation of Softmax Regression", with `from fmnist import d2l`.

The seed notebook's model and recipe: Flatten then Linear(784, 10), weights N(0, 0.01^2),
cross-entropy with reduction='none' (one loss per example), SGD with lr 0.1, batches of 256.
Epochs: $FMNIST_EXAMPLE_EPOCHS (default 10, as the book). Outside Jupyter the training
curves are saved as fmnist-train_ch3.png in the current directory.
"""

import os

import torch
from torch import nn

from fmnist import d2l

batch_size = 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)

# PyTorch does not implicitly reshape the inputs, so the flatten layer comes
# before the linear layer to adjust the shape of the network's input.
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def init_weights(m):
    if type(m) == nn.Linear:  # noqa: E721 (the book's code)
        nn.init.normal_(m.weight, std=0.01)


net.apply(init_weights)

loss = nn.CrossEntropyLoss(reduction="none")

trainer = torch.optim.SGD(net.parameters(), lr=0.1)

num_epochs = int(os.environ.get("FMNIST_EXAMPLE_EPOCHS", "10"))
d2l.train_ch3(net, train_iter, test_iter, loss, num_epochs, trainer)
