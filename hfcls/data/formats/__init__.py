"""Readers for the dataset layouts MMClassification users already have.

Each reader is one function whose keyword arguments are its recipe keys; each
returns a `datasets.Dataset` with `image` (Image) and `label` (ClassLabel, or a
List of them for multi-label data; PASCAL VOC adds `difficult`).
"""

from hfcls.data.formats.cifar import cifar10, cifar100
from hfcls.data.formats.disk import disk
from hfcls.data.formats.idx import fashion_mnist, mnist
from hfcls.data.formats.lists import annotation_list, imagenet
from hfcls.data.formats.voc import voc

FORMATS = {
    "imagenet": imagenet,
    "annotation_list": annotation_list,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "disk": disk,
    "voc": voc,
}
