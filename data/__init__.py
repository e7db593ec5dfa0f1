"""Data sets (uint8 tensors, torchvision readers) and the device-resident batch loader."""
from .loader import DeviceLoader, random_crop
from .sets import (DEBIAN_FASHION_MNIST, DataError, ImageDataset, Split, dataset_names, load_dataset,
                   register_dataset)

__all__ = ["DeviceLoader", "random_crop", "DEBIAN_FASHION_MNIST", "DataError", "ImageDataset", "Split",
           "dataset_names", "load_dataset", "register_dataset"]
