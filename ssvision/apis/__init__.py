"""Use a trained model: predict on new images and export it for other libraries.

* :func:`init_model` / :func:`inference` (:mod:`.inference`): a config and a checkpoint
  in, per-image labels, masks or boxes out;
* :func:`export_model` (:mod:`.export`): the teacher (or the student) as plain weights
  for timm / torchvision / mmdetection, or as ONNX, with a json manifest that says how
  to rebuild and feed it.
"""

from .export import FORMATS, export_model, export_onnx, export_plain
from .inference import (
    NETWORKS,
    TASKS,
    InferenceModel,
    inference,
    init_model,
    iter_inference,
    load_image,
)

__all__ = ['init_model', 'inference', 'iter_inference', 'load_image', 'InferenceModel',
           'NETWORKS', 'TASKS', 'export_model', 'export_plain', 'export_onnx', 'FORMATS']
