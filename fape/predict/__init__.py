"""Expression recognition on images, folders, videos and cameras (``fape predict``), and model
export (``fape export``).

A frame goes through three timed stages: face detection (``detect.py``, once per frame), face
preprocessing (``fape.data.preprocess``, shared with training: crop, resize, channels and range exactly as the model's training
data, read from its checkpoint), and classification of all faces of the frame in one batch
(``backends.py``: PyTorch, TorchScript or ONNX Runtime). ``track.py`` carries faces between
detections; ``run.py`` drives sources (``sources.py``) and writes the outputs.
"""
