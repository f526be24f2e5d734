"""Clustering: preprocessing, algorithms, k selection, projection (UMAP/t-SNE), diagnostics, summaries."""
