"""Data: reading images, preprocessing, and the training/evaluation data formats."""

from .images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, list_images, load_image
from .preprocess import Preprocessor

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "list_images", "load_image", "Preprocessor"]
