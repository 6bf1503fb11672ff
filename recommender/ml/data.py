"""Reading ``user item item ...`` sequence files and the leave-one-out split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SequenceData:
    """Per-user item-index sequences plus the id <-> index maps."""

    sequences: list  # list[np.ndarray[int64]] of dense item indices in time order
    user_ids: list
    item_ids: list  # item_ids[index] -> original id (string)

    @property
    def n_items(self):
        return len(self.item_ids)

    @property
    def item_index(self):
        return {item: idx for idx, item in enumerate(self.item_ids)}


def read_sequences(path):
    """Read a file with one line per user: ``user_id item_id item_id ...``.

    Ids are arbitrary strings; items get dense indices in order of first
    appearance. Blank lines are ignored.
    """
    index, item_ids, user_ids, sequences = {}, [], [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if not parts:
                continue
            seq = np.empty(len(parts) - 1, dtype=np.int64)
            for pos, item in enumerate(parts[1:]):
                idx = index.get(item)
                if idx is None:
                    idx = index[item] = len(item_ids)
                    item_ids.append(item)
                seq[pos] = idx
            user_ids.append(parts[0])
            sequences.append(seq)
    return SequenceData(sequences, user_ids, item_ids)


def read_item_attributes(path, item_ids):
    """Read ``{item_id: [attribute_id, ...]}`` JSON into per-index lists.

    Returns a list (length n_items) of int arrays of dense attribute indices
    (starting at 0); items absent from the file get an empty array.
    """
    raw = json.loads(Path(path).read_text())
    attr_index, out = {}, []
    for item in item_ids:
        attrs = raw.get(str(item), [])
        out.append(
            np.array(
                [attr_index.setdefault(a, len(attr_index)) for a in attrs],
                dtype=np.int64,
            )
        )
    return out


@dataclass
class Split:
    """Leave-one-out split.

    ``train[u]`` is every item but the last two; ``val_target[u]`` the one
    before last, ``test_target[u]`` the last. Users with fewer than 3 items
    keep all items in ``train`` and are excluded from evaluation
    (``eval_users`` lists the evaluated ones).
    """

    train: list
    val_target: np.ndarray
    test_target: np.ndarray
    eval_users: np.ndarray
    n_items: int
    skipped_users: int = 0
    extra: dict = field(default_factory=dict)

    def val_histories(self):
        """History fed to the model when predicting the validation target."""
        return [self.train[u] for u in self.eval_users]

    def test_histories(self):
        """History for the test target: train items plus the validation item."""
        return [np.append(self.train[u], self.val_target[u]) for u in self.eval_users]


def leave_one_out(sequences, n_items):
    """Split each sequence into train / validation target / test target."""
    train, val_t, test_t, users = [], [], [], []
    for user, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) < 3:
            train.append(seq)  # too short to evaluate, but its items still teach the model
            val_t.append(-1)
            test_t.append(-1)
            continue
        train.append(seq[:-2])
        val_t.append(seq[-2])
        test_t.append(seq[-1])
        users.append(user)
    skipped = len(sequences) - len(users)
    return Split(
        train,
        np.array(val_t),
        np.array(test_t),
        np.array(users, dtype=np.int64),
        n_items,
        skipped,
    )
