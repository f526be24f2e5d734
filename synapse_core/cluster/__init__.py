"""Clustering: preprocessing, algorithms, honest k selection, projection (UMAP/t-SNE), diagnostics, summaries.

:func:`run_clustering` with :class:`ClusterSettings` turns a feature table into a :class:`ClusterResult`;
:func:`warm_up` compiles the map's numba code ahead of a first clustering.

The names below are the public API; they are imported on first use, so importing a light module
of this package (e.g. its settings) does not pull in the heavy ones (torch, scikit-learn).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'settings': ['ClusterSettings', 'ProjectionSettings'],
        'run': ['run_clustering', 'write_result', 'ClusterResult'],
        'k_selection': ['sweep_k', 'choose_k', 'decide_k'],
        'diagnostics': ['stability', 'cluster_alignment', 'knn_overlap'],
        'projection': ['project'],
        'warmup': ['warm_up'],
        'preprocess': ['prepare', 'feature_columns'],
        'summary': ['representatives', 'summarise_clusters', 'morphology_effect_sizes'],
    },
)
