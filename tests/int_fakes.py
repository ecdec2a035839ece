"""Random integer-scale test networks (docs/DESIGN.md, section 9) for the format, runtime and fuzz tests."""
from __future__ import annotations

from typing import Optional

import numpy as np

from model_fakes import random_lenet

# Activation factors of the random LeNet's binarized layers: the largest segment scales of its
# activations on random frames are about 2-6, so levels use most of 0..127 and some saturate.
ACT_FACTORS = {"conv2": 0.03, "fc3": 0.03}


def int_lenet(beta_w: Optional[int] = 16, beta_a: Optional[int] = 2, seed: int = 0, **kwargs):
    """``random_lenet`` with integer scales on its binarized layers -> (graph, tensors)."""
    graph, tensors = random_lenet(beta_w, beta_a, seed=seed, **kwargs)
    for layer in graph["layers"]:
        if layer.get("name") in ACT_FACTORS:
            layer["int_scales"] = True
            tensors[layer["weight"] + ".act_factor"] = np.array([ACT_FACTORS[layer["name"]]], np.float32)
    return graph, tensors
