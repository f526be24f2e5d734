"""Per-cluster description: representatives (the one implementation the gallery uses too)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synapse_core.cluster.summary import representatives


def test_representatives_are_closest_to_the_centroid_and_skip_noise():
    clustered = pd.DataFrame({
        "bbox_name": ["bbox1", "bbox1", "bbox2", "bbox2", "bbox2", "bbox2"],
        "Var1": ["a", "b", "a", "c", "d", "e"],
        "cluster": [0, 0, 1, 1, 1, -1],
        "distance_to_centroid": [0.5, 0.1, 0.9, 0.2, 0.4, np.nan],
    })
    reps = representatives(clustered, 2)
    assert reps[["cluster", "rank", "bbox_name", "Var1"]].values.tolist() == [
        [0, 1, "bbox1", "b"], [0, 2, "bbox1", "a"], [1, 1, "bbox2", "c"], [1, 2, "bbox2", "d"]]
