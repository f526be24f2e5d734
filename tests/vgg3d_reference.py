"""An independent functional forward of the VGG3D trunk, from a state dict (for comparing in tests)."""

import torch.nn.functional as F


def reference_trunk(state, x, config, stop_index):
    """Independent functional forward of features[0..stop_index] from a state dict (eval-mode BN)."""
    idx = 0
    for n_conv in config.n_convolutions:
        for _ in range(n_conv):
            x = F.conv3d(x, state[f"features.{idx}.weight"], state[f"features.{idx}.bias"], padding=1)
            if idx == stop_index:
                return x
            b = idx + 1
            x = F.batch_norm(x, state[f"features.{b}.running_mean"], state[f"features.{b}.running_var"],
                             state[f"features.{b}.weight"], state[f"features.{b}.bias"], training=False, eps=1e-5)
            if b == stop_index:
                return x
            x = F.relu(x)
            if idx + 2 == stop_index:
                return x
            idx += 3
        x = F.max_pool3d(x, 2)
        if idx == stop_index:
            return x
        idx += 1
    raise AssertionError("stop_index beyond the trunk")
