"""Parameters for training on the shop's own data, sized to the host.

The deep model computes a full softmax over the catalogue at every position of a batch, so a batch
costs (users x sequence length x items) floats of logits, and as much again in gradients. On the
Complete Journey (68k items, long grocery histories) the defaults that suit Amazon Beauty (12k items,
20 steps) would need ~7 GB per batch; we cap the logits of a batch at LOGITS_BUDGET floats (512 MB).
"""

import numpy as np

from recommender.ml.deep_features import choose_maxlen

LOGITS_BUDGET = 2**27
MAX_SEQUENCE = 50  # grocery baskets repeat; the last 50 purchases carry the sequential signal


def deep_parameters(*, histories, n_items, parameters):
    """The deep model's parameters with maxlen and batch_size bounded for this catalogue, unless given."""
    chosen = dict(parameters)
    if "maxlen" not in chosen:
        chosen["maxlen"] = min(choose_maxlen(histories), MAX_SEQUENCE)
    if "batch_size" not in chosen:
        fits = LOGITS_BUDGET // max(chosen["maxlen"] * n_items, 1)
        chosen["batch_size"] = int(np.clip(fits, 8, 128))
    return chosen
