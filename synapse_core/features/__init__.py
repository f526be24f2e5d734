"""Features: VGG3D network, checkpoints, pooling, morphology, extraction jobs and their cache."""
