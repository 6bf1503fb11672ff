"""NumPy-side inputs of the deep model (no TensorFlow here).

Sequences are left-padded to ``maxlen`` with item index + 1 (0 = padding).
The transition *prior* fed to the network is sparse: for each predicted
position and each of the last ``n_lags`` items ``a_j`` it lists the items
``b`` with a training transition ``a_j -> b`` and two features,
``log1p(C[a_j, b])`` and ``C[a_j, b] / rowsum(a_j)``.
"""

from __future__ import annotations

import numpy as np

from .ragged import Ragged

N_PRIOR_FEATURES = 2


def choose_maxlen(histories, quantile=0.95, low=10, high=200):
    """Sequence length covering ``quantile`` of the training histories fully.

    Rounded up to a multiple of 10 and clipped to [low, high]: short Amazon
    sequences get a short, cheap window, long MovieLens ones the usual 200.
    """
    lengths = Ragged.of(histories).lengths if len(histories) else np.array([low])
    value = int(np.ceil(np.quantile(lengths, quantile) / 10.0) * 10)
    return int(np.clip(value, low, high))


# The deep model computes a full softmax over the catalogue at every position of a batch, so a batch
# costs (users x sequence length x items) floats of logits, and as much again in gradients. On the
# Complete Journey (68k items, long grocery histories) the defaults that suit Amazon Beauty (12k items,
# 20 steps) would need ~7 GB per batch; the logits of a batch are capped at LOGITS_BUDGET floats (512 MB).
LOGITS_BUDGET = 2**27
MAX_SEQUENCE = 50  # grocery baskets repeat; the last 50 purchases carry the sequential signal


def catalogue_parameters(*, histories, n_items, parameters):
    """The deep model's parameters with maxlen and batch_size bounded for this catalogue, unless given."""
    chosen = dict(parameters)
    if "maxlen" not in chosen:
        chosen["maxlen"] = min(choose_maxlen(histories), MAX_SEQUENCE)
    if "batch_size" not in chosen:
        fits = LOGITS_BUDGET // max(chosen["maxlen"] * n_items, 1)
        chosen["batch_size"] = int(np.clip(fits, 8, 128))
    return chosen


def pad_left(sequences, maxlen, offset=1, dtype=np.int32):
    """(n, maxlen) array of the last maxlen values (+offset), left-padded with 0."""
    out = np.zeros((len(sequences), maxlen), dtype=dtype)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-maxlen:]) if len(seq) else np.zeros(0)
        if len(tail):
            out[row, maxlen - len(tail) :] = tail + offset
    return out


def gap_buckets(timestamps, n_buckets):
    """Bucket of the log2 time gap (in minutes) to the previous event; 0 = none."""
    stamps = np.asarray(timestamps, dtype=np.float64)
    gaps = np.diff(stamps, prepend=np.nan)
    buckets = np.zeros(len(stamps), dtype=np.int64)
    known = ~np.isnan(gaps)
    minutes = np.maximum(gaps[known], 0.0) / 60.0
    buckets[known] = 1 + np.minimum(np.floor(np.log2(1.0 + minutes)), n_buckets - 2).astype(np.int64)
    return buckets


def ragged_gap_buckets(timestamps, n_buckets):
    """:func:`gap_buckets` of every row of a Ragged of timestamps at once (a Ragged of the same rows)."""
    stamps = np.asarray(timestamps.values, dtype=np.float64)
    gaps = np.diff(stamps, prepend=np.nan)
    gaps[timestamps.offsets[:-1][timestamps.lengths > 0]] = np.nan  # a row's first event has none before it
    buckets = np.zeros(len(stamps), dtype=np.int64)
    known = ~np.isnan(gaps)
    minutes = np.maximum(gaps[known], 0.0) / 60.0
    buckets[known] = 1 + np.minimum(np.floor(np.log2(1.0 + minutes)), n_buckets - 2).astype(np.int64)
    return timestamps.with_values(buckets)


class TrainingRows:
    """The next-item training rows of Ragged histories, padded one batch at a time.

    Row ``u`` (a history of at least two events) has the history but its last event as input and the
    history from its second event as targets, both the last ``maxlen`` positions, left-padded. Nothing of
    size (customers x maxlen) is held: :meth:`batch` pads only the rows asked for, so a million customers
    cost their flat arrays and no more.
    """

    def __init__(self, histories, maxlen, event_types=None, gap_ids=None):
        self.histories = Ragged.of(histories)
        self.maxlen = int(maxlen)
        self.event_types = None if event_types is None else Ragged.of(event_types)
        self.gap_ids = None if gap_ids is None else Ragged.of(gap_ids)
        self.usable = np.flatnonzero(self.histories.lengths > 1)

    def __len__(self):
        return len(self.usable)

    def batch(self, rows):
        """Inputs (items, optional events, gaps) and targets, each (len(rows), maxlen), of training rows ``rows``."""
        users = self.usable[np.asarray(rows, dtype=np.int64)]
        ends = self.histories.offsets[users + 1] - 1  # the inputs stop before each history's last event
        lengths = np.minimum(ends - self.histories.offsets[users], self.maxlen)
        arrays = {
            "items": _padded(self.histories.values, ends, lengths, self.maxlen, 1),
            "targets": _padded(self.histories.values, ends + 1, lengths, self.maxlen, 1),
        }
        if self.event_types is not None:
            arrays["events"] = _padded(self.event_types.values, ends, lengths, self.maxlen, 1)
        if self.gap_ids is not None:
            arrays["gaps"] = _padded(self.gap_ids.values, ends, lengths, self.maxlen, 0)
        return arrays


def _padded(values, ends, lengths, maxlen, offset):
    """(n, maxlen) int32: per row the ``lengths[r]`` values ending before ``ends[r]`` (+offset), left-padded with 0."""
    columns = np.arange(maxlen)
    first = maxlen - lengths  # the first filled column of each row
    filled = columns[None, :] >= first[:, None]
    source = (ends - lengths)[:, None] + (columns[None, :] - first[:, None])
    out = np.zeros((len(ends), maxlen), dtype=np.int32)
    out[filled] = values[source[filled]] + offset
    return out


def inference_arrays(histories, maxlen, event_types=None, gap_ids=None):
    """Model inputs for scoring: the whole history is the input."""
    arrays = {"items": pad_left(histories, maxlen)}
    if event_types is not None:
        arrays["events"] = pad_left(event_types, maxlen)
    if gap_ids is not None:
        arrays["gaps"] = pad_left(gap_ids, maxlen, offset=0)
    return arrays


def _gather_csr_rows(indptr, indices, data, rows):
    """Concatenated non-zeros of the given CSR rows: (which row, column, value)."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat = np.repeat(starts, lengths) + offsets
    return owner, indices[flat], data[flat]


def prior_entries(counts, row_sums, lag_items, targets=None, decay=0.5):
    """Sparse transition features for P predicted positions.

    Per lag j the entries carry [log1p(C[a_j, b]), C[a_j, b] / rowsum(a_j)];
    one extra pseudo-lag (index n_lags) carries [log1p(s_b), 0] with
    s_b = sum_j decay**j C[a_j, b], the transition baseline's own score, so
    the network can reproduce that baseline exactly with one weight.

    ``lag_items`` is (P, n_lags) of item index + 1 (0 = no item at that lag).
    With ``targets`` (training) the position's own transition lag0 -> target
    is removed from the counts, so training sees the prior exactly as a
    held-out position would (otherwise the network learns to over-trust it).
    Returns (position, item, lag, features (nnz, 2) float32).
    """
    n_lags = lag_items.shape[1]
    flat = lag_items.reshape(-1).astype(np.int64)
    valid = np.flatnonzero(flat > 0)
    rows = flat[valid] - 1
    owner, cols, vals = _gather_csr_rows(counts.indptr, counts.indices, counts.data, rows)
    slot = valid[owner]
    pos, lag = slot // n_lags, slot % n_lags
    vals = vals.astype(np.float32)
    sums = row_sums[rows[owner]].astype(np.float32)
    if targets is not None:
        own = (lag == 0) & (cols == targets[pos] - 1)
        vals = vals - own
        sums = sums - (lag == 0)  # the own transition leaves the lag0 row total too
    feats = np.stack([np.log1p(vals), vals / np.maximum(sums, 1.0)], axis=1).astype(np.float32)
    n_cols = counts.shape[1]
    keys, inverse = np.unique(pos * n_cols + cols, return_inverse=True)
    summed = np.bincount(inverse, weights=vals * decay**lag, minlength=len(keys))
    agg = np.stack([np.log1p(summed), np.zeros_like(summed)], axis=1).astype(np.float32)
    pos = np.concatenate([pos, keys // n_cols])
    cols = np.concatenate([cols, keys % n_cols])
    lag = np.concatenate([lag, np.full(len(keys), n_lags)])
    return (
        pos.astype(np.int64),
        cols.astype(np.int64),
        lag.astype(np.int64),
        np.concatenate([feats, agg]),
    )


def lag_matrix(items, n_lags):
    """(n, maxlen, n_lags): item at each position and the n_lags - 1 before it."""
    n, maxlen = items.shape
    out = np.zeros((n, maxlen, n_lags), dtype=items.dtype)
    for lag in range(n_lags):
        out[:, lag:, lag] = items[:, : maxlen - lag]
    return out


def candidate_columns(targets, n_items, n_sampled, rng):
    """Columns of the sampled softmax: the batch's targets plus uniform negatives."""
    negatives = rng.integers(0, n_items, size=n_sampled)
    return np.unique(np.concatenate([targets, negatives])).astype(np.int64)
