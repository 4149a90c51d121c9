"""Plain CIFAR (32x32) definitions of the paper's classification networks; importing registers them."""

from . import cct, googlenet, mobilenet, resnet, vgg  # noqa: F401
