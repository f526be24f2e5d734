"""Features: the VGG3D network, checkpoints, self-supervised training, pooling, morphology, extraction and its cache.

:func:`extract_features` with :class:`ExtractSettings` turns a dataset into one row per synapse.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'settings': ['ExtractSettings'],
        'extract': ['extract_features', 'ExtractResult', 'FeatureModel', 'cache_status'],
        'checkpoints': ['load_checkpoint', 'load_model', 'save_checkpoint', 'CheckpointError'],
        'vgg3d': ['Vgg3D', 'Vgg3DConfig', 'parse_layers'],
        'layer_names': ['layer_label', 'layer_options', 'layers_help'],
        'morphology': ['morphology_features', 'morphology_columns'],
        'train_settings': ['TrainSettings'],
        'train': ['train', 'TrainResult'],
    },
)
