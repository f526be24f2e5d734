"""Crops: the cube of EM around each synapse on a grid in nm, the presynaptic side, segmentation-type masks, alpha blending.

:class:`CropSettings` says how; :func:`crop_synapse` / :func:`iter_crops` build :class:`SynapseCrop` objects.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'settings': ['CropSettings'],
        'build': ['SynapseCrop', 'SynapseContext', 'Discarded', 'read_context', 'read_context_arrays', 'build_crop', 'crop_synapse', 'iter_crops', 'blend'],
        'resample': ['read_raw', 'read_labels', 'target_extent'],
        'presynaptic': ['PresynapticRecord', 'infer_presynaptic_side'],
        'segmentation_types': ['SEGMENTATION_TYPES', 'SegmentationType'],
        'availability': ['SegmentationTypeUnavailable', 'check_segmentation_type_for_dataset', 'available_types'],
    },
)
