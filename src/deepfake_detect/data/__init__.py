"""Data: reading images, preprocessing, and the training/evaluation data formats."""

from .datasets import (
    LabeledData,
    LabelFile,
    as_labeled_data,
    as_sources,
    concat_sources,
    read_label_file,
    stratified_split,
)
from .images import ERROR_MODES, IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, list_images, load_image
from .preprocess import Preprocessor

__all__ = [
    "ERROR_MODES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "list_images",
    "load_image",
    "Preprocessor",
    "LabelFile",
    "LabeledData",
    "as_labeled_data",
    "as_sources",
    "concat_sources",
    "read_label_file",
    "stratified_split",
]
