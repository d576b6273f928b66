"""Use a trained model: predict on new images with :func:`init_model` /
:func:`inference` (:mod:`.inference`)."""

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
           'NETWORKS', 'TASKS']
