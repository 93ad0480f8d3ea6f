"""Datasets: the built-in synthetic set and loaders for public IQA datasets."""

from iqa_eval.datasets.base import Dataset, DatasetCard, DatasetError

__all__ = ["Dataset", "DatasetCard", "DatasetError"]
