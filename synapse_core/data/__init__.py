"""Data: dataset configs, label ids, synapse tables, volumes (TIFF/HDF5/Zarr), voxel sizes, window reads, validation, the demo dataset.

Start with :func:`open_dataset` (a folder or a ``synapse_dataset.toml``); axis order is (z, y, x), sizes in nm.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'dataset': ['open_dataset', 'Dataset', 'BboxSource', 'DatasetError'],
        'bboxes': ['discover_bboxes'],
        'quick_open': ['dataset_state'],
        'config': ['load_dataset_config', 'DatasetConfig', 'ConfigError'],
        'labels': ['LabelIds', 'default_labels', 'count_label_ids'],
        'tables': ['read_table', 'TableError'],
        'volumes': ['VolumeSource', 'VolumeError', 'convert_tiff_stack'],
        'windows': ['read_box', 'point_values'],
        'voxel_size': ['VoxelSize', 'VoxelSizeError', 'from_volume'],
        'validate': ['ValidationReport', 'validate_rows'],
        'synapse_keys': ['UnknownSynapseError', 'synapse_id', 'synapse_row'],
        'demo': ['write_demo_dataset', 'demo_data_root'],
        'phantoms': ['random_phantom', 'sample_phantom', 'write_phantom_dataset'],
        'cache_dir': ['resolve_cache_dir'],
    },
)
