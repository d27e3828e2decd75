"""d2l.ai 3.5 "The Image Classification Dataset", with `from fmnist import d2l` instead of d2l.

The book reads the files with torchvision and a DataLoader with 4 worker processes;
fmnist holds the whole dataset in memory as tensors, so batches are slices of it.
Run: python examples/image_classification_dataset.py (outside Jupyter the picture is
saved as fmnist-show_images.png in the current directory; the path is printed).
"""

from fmnist import d2l

d2l.use_svg_display()

# The first 18 training images of a shuffled pass, with their text labels.
train_iter, test_iter = d2l.load_data_fashion_mnist(18)
X, y = next(iter(train_iter))
print(X.shape, X.dtype, y.shape, y.dtype)
d2l.show_images(X.reshape(18, 28, 28), 2, 9, titles=d2l.get_fashion_mnist_labels(y))

# Reading the training data: one pass over 60,000 images in batches of 256.
batch_size = 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
print(f"{len(train_iter)} training batches, {len(test_iter)} test batches")
timer = d2l.Timer()
for X, y in train_iter:  # noqa: B007 (the book times a pass that does nothing with the batches)
    continue
print(f"{timer.stop():.2f} sec")

# Resized images, as the book's load_data_fashion_mnist(32, resize=64).
train_iter, test_iter = d2l.load_data_fashion_mnist(32, resize=64)
for X, y in train_iter:  # noqa: B007 (the book times a pass that does nothing with the batches)
    print(X.shape, X.dtype, y.shape, y.dtype)
    break
