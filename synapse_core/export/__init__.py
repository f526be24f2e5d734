"""Results for other tools: Parquet/CSV tables, AnnData ``.h5ad``, Neuroglancer states and annotation layers, WebKnossos NML.

Pick the table format by suffix with :func:`write_table`; :func:`write_h5ad` writes an AnnData file
scanpy and cellxgene open; :func:`synapse_state` / :func:`state_url` build a Neuroglancer link per
synapse and :func:`write_annotation_layer` a precomputed annotation layer of all synapses;
:func:`write_nml` writes a WebKnossos skeleton with one node per synapse.

The names below are the public API; they are imported on first use.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        'tables': ['TABLE_SUFFIXES', 'write_table', 'read_table', 'check_table_suffix', 'write_features', 'write_clusters',
                   'read_features'],
        'h5ad': ['write_h5ad', 'features_to_h5ad', 'clusters_to_h5ad'],
        'neuroglancer': ['synapse_state', 'state_url', 'write_annotation_layer', 'neuroglancer_source'],
        'webknossos': ['write_nml'],
        'positions': ['positions_nm', 'link_voxel_size_nm'],
    },
)
