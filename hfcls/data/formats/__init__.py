"""Readers for the dataset layouts MMClassification users already have.

Each reader is one function whose keyword arguments are its recipe keys; each
returns a `datasets.Dataset` with exactly `image` (Image) and `label` (ClassLabel).
"""

from hfcls.data.formats.cifar import cifar10, cifar100
from hfcls.data.formats.disk import disk
from hfcls.data.formats.idx import fashion_mnist, mnist
from hfcls.data.formats.lists import annotation_list, imagenet

FORMATS = {
    "imagenet": imagenet,
    "annotation_list": annotation_list,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "disk": disk,
}
