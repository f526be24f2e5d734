"""Visualisation: Plotly/matplotlib figures, crop GIFs and PNGs, slice overlays, galleries."""
