"""Data: dataset configs, label ids, synapse tables, volumes (TIFF/HDF5/Zarr), validation, the demo dataset."""
