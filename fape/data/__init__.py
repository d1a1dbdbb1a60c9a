"""Datasets: the on-disk format, adapters, the synthetic multi-pose set, landmarks, pose masks, pairs."""
from fape.data.format import DatasetError, DatasetInfo, FaceIndex, read_index, write_index

__all__ = ["DatasetError", "DatasetInfo", "FaceIndex", "read_index", "write_index"]
