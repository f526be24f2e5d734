"""Crops: the cube of EM around each synapse, the presynaptic side, segmentation-type masks, alpha blending."""
