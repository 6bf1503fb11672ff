"""The deep model, repeat-aware: a learned mixture of buying again and buying new (issue 11, section 5).

Fitted with each event's order (``orders``, what the next-basket task and a shop with baskets give it),
the model scores every item for a customer's next basket as one softmax over the catalogue whose logits
come from two parts:

- the *repeat* part, for every item the customer bought before: a small network (two ReLU layers) over
  the item's features at the reference time (deep_repeat_features.ITEM_FEATURES: personal frequency,
  order-recency-decayed and TIFU frequencies, days since the last purchase, the customer's mean interval
  for the item and how due it is, whether it was in the last order, its popularity) and the customer's
  (CUSTOMER_FEATURES: orders, basket size, how much they explore ...);
- the *explore* part, for every item the customer never bought: ``w . log1p(pop_i) + gate(customer)``
  where ``pop_i`` holds the item's orders over the last 28 and 7 days and its first-time buyers over the
  last 28 (deep_repeat_features.POPULARITY), and ``gate`` is a learned linear function of the customer's
  features: how likely this customer is to buy something new at all, on the same scale as the repeat
  logits. With ``item_vectors=True`` it adds ``u . e_i + b_i``: a learned item embedding ``e`` against
  ``u``, the projected TIFU-weighted mean of the embeddings of the customer's items, and an item bias. On
  the Complete Journey these over-fitted (validation explore recall@10 fell from 0.015 to 0.007 over three
  epochs, with weight decay 1.0 too), so they are off by default.

With ``explore_rank="tifuknn"`` the new items are ranked by TIFU-KNN instead (tifuknn.py: the mean
time-decayed frequency vector of the customer's nearest customers), keeping the model's own logit values
(:func:`_rank_new_by`): the repeat part and the balance of buy-again against new stay the model's, the
choice and order of new items are TIFU-KNN's; ``repeat_rank="tifuknn"`` does the same for the items bought
before (:func:`_rank_bought_by`, in the order of TIFU-KNN's score). It is how the product serves whichever
model wins each kind at validation (next_basket.choose_rankings, in the tuning and in every production
version; docs/benchmarks.md).

Training targets are next baskets at earlier cut-offs: ``n_cutoffs`` reference times ``cutoff_step_days``
apart before the newest training day (so fitted on the purchases before a cut-off V, it never reads one at
or after V); at each, the features come from the events before it and the target is the customer's first
order in the ``HORIZON_DAYS`` after it (and before the end of the training data). The loss is the softmax
cross-entropy of each target item against the customer's repeat candidates (their ``max_candidates`` items
of highest TIFU value) and the new items, these sampled: ``n_negatives`` uniform draws over the items sold
before, each standing for ``n_sold / n_negatives`` items (the sampled-softmax correction), so the
repeat/explore balance is learned on the scale of the whole catalogue. ``basket_epochs`` passes over the
examples (chosen at validation, then frozen: next_basket.tune_and_test).

Fitted without orders (a sequence file such as Amazon Beauty, or a next-item leave-one-out fit), the
model is the sequential self-attention model of deep.py unchanged: every method is its parent's.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import deep_repeat_features as RF
from .base import BaseRecommender, catalogue_size, csr_from_state, csr_to_state
from .deep import DeepSequentialRecommender
from .progress import Progress
from .ragged import Ragged

DAY = RF.DAY
HORIZON_DAYS = 28
# How each kind of item is ranked (explore_rank: new items; repeat_rank: items bought before): by the
# model's own logits ("model"), or in TIFU-KNN's order ("tifuknn": for new items its neighbourhood value,
# for bought ones its score, alpha x personal + (1 - alpha) x neighbourhood) with the model's own logit
# values (_rank_new_by, _rank_bought_by), so the share of each kind in a list stays the model's.
RANKINGS = ("model", "tifuknn")
KNN_NEIGHBOURS = 100  # TIFU-KNN's neighbours when explore_neighbours is off (its setting chosen at V on the CJ)
KNN_ALPHA = 0.7  # TIFU-KNN's weight of the personal vector (its setting chosen at V on the CJ)
# The customers the neighbours are searched among, at most (a random sample beyond it, fixed by the seed):
# the search is a dense (chunk x pool) distance matrix per scored chunk, so a million customers would cost
# 4 GB and minutes a chunk; the Complete Journey's 2,469 households are far below it.
KNN_POOL = 20_000
RANK_TOP = 200  # new items per customer placed in TIFU-KNN's order (every list is far shorter)
# Customers whose examples are built before they are joined into flat arrays: a list entry per example
# lives only that long (at a million customers, lists over a whole cut-off would hold millions of arrays).
EXAMPLE_CHUNK = 10_000
# Rows of a chunk's (customers x items) scores whose softmax is taken at once, in float32 and in place: 2 x
# 100,000 float32 is 0.8 MB, inside a core's cache. The whole chunk's float64 copies (512 x 100,000: 400 MB
# each) took half a generation's time at 100,000 items (the softmax of 512 x 100,000: 2.8 s whole, 0.21 s by 16
# rows, 0.14 s by 2 in float64, about 0.06 s by 2 in float32: bench/softmax_rows.py).
BLOCK_ROWS = 2


class RepeatAwareDeepRecommender(DeepSequentialRecommender):
    """Deep model: sequential self-attention for sequences; a repeat/explore mixture for baskets."""

    def __init__(
        self,
        embed_dim=64,
        n_blocks=2,
        n_heads=2,
        dropout=0.5,
        maxlen=None,
        learning_rate=2e-3,
        batch_size=128,
        max_epochs=200,
        patience=5,
        max_seconds=780.0,
        n_lags=3,
        use_prior=True,
        sampled_softmax_threshold=100_000,
        n_sampled=4096,
        n_gap_buckets=16,
        seed=0,
        verbose=True,
        basket_epochs=4,
        basket_dim=32,
        hidden=32,
        basket_learning_rate=3e-3,
        n_cutoffs=6,
        cutoff_step_days=7,
        max_candidates=300,
        n_negatives=512,
        examples_per_batch=64,
        l2=1.0,
        item_vectors=False,
        explore_neighbours=0,
        explore_rank="model",
        repeat_rank="model",
    ):
        super().__init__(
            embed_dim=embed_dim,
            n_blocks=n_blocks,
            n_heads=n_heads,
            dropout=dropout,
            maxlen=maxlen,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            max_seconds=max_seconds,
            n_lags=n_lags,
            use_prior=use_prior,
            sampled_softmax_threshold=sampled_softmax_threshold,
            n_sampled=n_sampled,
            n_gap_buckets=n_gap_buckets,
            seed=seed,
            verbose=verbose,
        )
        self.basket_epochs = basket_epochs
        self.basket_dim = basket_dim
        self.hidden = hidden
        self.basket_learning_rate = basket_learning_rate
        self.n_cutoffs = n_cutoffs
        self.cutoff_step_days = cutoff_step_days
        self.max_candidates = max_candidates
        self.n_negatives = n_negatives
        self.examples_per_batch = examples_per_batch
        self.l2 = l2
        self.item_vectors = item_vectors
        self.explore_neighbours = explore_neighbours
        for name, value in (("explore_rank", explore_rank), ("repeat_rank", repeat_rank)):
            if value not in RANKINGS:
                raise ValueError(f"{name} must be one of {', '.join(RANKINGS)}, not {value!r}")
        self.explore_rank = explore_rank
        self.repeat_rank = repeat_rank

    @property
    def basket_mode(self):
        return bool(getattr(self, "basket_mode_", False))

    @property
    def _uses_knn(self):
        """Whether the basket mode reads TIFU-KNN's neighbourhood: as an input, or to rank new items."""
        return bool(self.explore_neighbours) or "tifuknn" in (self.explore_rank, self.repeat_rank)

    @property
    def _knn_size(self):
        return int(self.explore_neighbours) or KNN_NEIGHBOURS

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        histories,
        event_types=None,
        timestamps=None,
        item_features=None,
        validation=None,
        progress_callback=None,
        n_items=None,
        orders=None,
        epoch_callback=None,
    ):
        """Train; returns self. With ``orders`` (and ``timestamps``) the repeat/explore mixture, else the
        sequential model (deep.py). ``epoch_callback(epoch, model)`` is called after each basket epoch with
        the model ready to score (the next-basket tuning measures validation recall there).
        ``progress_callback`` as deep.py's: per epoch, and about every minute while the examples are built
        (stage ``building examples``, customers x cut-offs) and within an epoch (``batches``)."""
        if orders is None:
            self.basket_mode_ = False
            return super().fit(
                histories,
                event_types=event_types,
                timestamps=timestamps,
                item_features=item_features,
                validation=validation,
                progress_callback=progress_callback,
                n_items=n_items,
            )
        if timestamps is None:
            raise ValueError("the deep model's basket mode needs the timestamps of the events with their orders")
        self.basket_mode_ = True
        started = time.perf_counter()
        progress = Progress(progress_callback, started)
        histories, orders = Ragged.of(histories, np.int64), Ragged.of(orders, np.int64)
        timestamps = Ragged.of(timestamps)
        self.n_items_ = catalogue_size(histories, n_items)
        newest = float(np.max(timestamps.values)) if len(timestamps.values) else 0.0
        self.now_ = float((np.floor(newest / DAY) + 1.0) * DAY)  # midnight after the newest purchase
        self.popularity_ = RF.order_popularity(histories, timestamps, orders, self.n_items_, self.now_)
        if self._uses_knn:
            self.knn_ = self._knn_at(histories, timestamps, orders, self.now_)[0]
        examples = self._examples(histories, timestamps, orders, progress)
        self.training_examples_ = int(len(examples["customer"]))
        self.examples_seconds_ = time.perf_counter() - started
        self._log(f"{self.training_examples_} next-basket examples built in {self.examples_seconds_:.0f}s")
        self._train_basket(examples, progress, epoch_callback, started)
        return self

    def _examples(self, histories, timestamps, orders, progress):
        """Flat training arrays: per example (customer, earlier cut-off) its candidates and targets.

        Built one cut-off and ``EXAMPLE_CHUNK`` customers at a time, each block joined into flat arrays at once.
        """
        first_seen = np.full(self.n_items_, np.inf)
        np.minimum.at(first_seen, histories.values, np.asarray(timestamps.values, np.float64))
        blocks, pops, knn_rows = [], [], []
        n, example = len(histories), 0
        for k in range(1, int(self.n_cutoffs) + 1):
            cutoff = self.now_ - k * float(self.cutoff_step_days) * DAY
            end = min(cutoff + HORIZON_DAYS * DAY, self.now_)
            popularity = RF.order_popularity(histories, timestamps, orders, self.n_items_, cutoff)
            pops.append(np.log1p(popularity))
            sold = first_seen < cutoff
            at_cutoff = []  # the rows of this cut-off's examples
            for begin in range(0, n, EXAMPLE_CHUNK):
                rows = range(begin, min(begin + EXAMPLE_CHUNK, n))
                block = self._example_block(histories, timestamps, orders, rows, (cutoff, end), popularity, sold)
                if block is not None:
                    block["seg"] += example
                    block["new_seg"] += example
                    block["cut"] = np.full(len(block["customer"]), k - 1, np.int64)
                    example += len(block["customer"])
                    at_cutoff += block.pop("rows")
                    blocks.append(block)
                progress.step("building examples", (k - 1) * n + rows.stop, int(self.n_cutoffs) * n)
            if self.explore_neighbours and at_cutoff:
                knn, vectors = self._knn_at(histories, timestamps, orders, cutoff)
                knn_rows.append(self._neighbourhood(knn, vectors[at_cutoff]))
        if not example:
            raise ValueError(
                "no customer has an order before and after any of the deep model's training cut-offs "
                f"({self.n_cutoffs} cut-offs {self.cutoff_step_days} days apart before the newest purchase)"
            )
        out = {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}
        out["log_pop"] = np.stack(pops).astype(np.float32)  # (cut-offs, n_items, len(POPULARITY)) at each cut-off
        out["sold_items"] = np.flatnonzero(first_seen < self.now_)  # where the sampled new items come from
        if self.explore_neighbours:
            import scipy.sparse as sp

            knn = sp.vstack(knn_rows).tocsr()  # (examples, n_items): each one's neighbourhood at its cut-off
            self.knn_scale_ = float(np.mean(knn.data)) if knn.nnz else 1.0
            out["knn"] = knn
            out["new_knn"] = np.asarray(knn[out["new_seg"], out["new"]]).ravel().astype(np.float32)
        return out

    def _example_block(self, histories, timestamps, orders, rows, window, popularity, sold):
        """The examples at one cut-off of the customers ``rows`` as flat arrays (``seg``, ``new_seg``: the
        example of each candidate and new target, counted from 0 in the block), or None if none has one."""
        cutoff, end = window
        parts = {"feats": [], "items": [], "label": [], "seg": [], "customer": [], "new": [], "new_seg": []}
        parts["n_sold"], kept = [], []
        for row in rows:
            history = histories[row]
            target = RF.first_order_after(history, timestamps[row], orders[row], cutoff, end)
            if not len(target):
                continue
            items, feats, customer = RF.customer_features(history, timestamps[row], orders[row], cutoff, popularity)
            if len(items) == 0:
                continue
            keep = self._candidates(feats)
            items, feats = items[keep], feats[keep]
            label = np.isin(items, target)
            new = np.setdiff1d(target, items)
            new = new[sold[new] & ~np.isin(new, RF.before(history, timestamps[row], None, cutoff)[0])]
            if not label.any() and not len(new):
                continue
            parts["feats"].append(feats)
            parts["items"].append(items)
            parts["label"].append(label)
            parts["seg"].append(np.full(len(items), len(kept), np.int64))
            parts["customer"].append(customer)
            parts["new"].append(new)
            parts["new_seg"].append(np.full(len(new), len(kept), np.int64))
            parts["n_sold"].append(float(sold.sum()))
            kept.append(row)
        if not kept:
            return None
        block = {name: np.concatenate(values) for name, values in parts.items() if name not in ("customer", "n_sold")}
        block["customer"] = np.stack(parts["customer"])
        block["n_sold"] = np.asarray(parts["n_sold"])
        block["rows"] = kept
        return block

    def _knn_at(self, histories, timestamps, orders, now):
        """TIFU-KNN (tifuknn.py; its setting chosen at V on the Complete Journey) fitted on the orders before
        ``now``, and every customer's vector then: what the explore part's neighbour feature reads."""
        from .tifuknn import TIFUKNNRecommender

        cut = [RF.before(h, timestamps[r], None if orders is None else orders[r], now) for r, h in enumerate(histories)]
        knn = TIFUKNNRecommender(group_size=3, within_decay=0.9, group_decay=0.9, n_neighbors=self._knn_size)
        items, stamps, numbers = [c[0] for c in cut], [c[1] for c in cut], [c[2] for c in cut]
        knn.n_items_ = self.n_items_
        vectors = knn._vectors(items, None if orders is None else numbers, stamps)
        keep = np.flatnonzero(vectors.getnnz(axis=1) > 0)
        if len(keep) > KNN_POOL:  # a fixed sample of customers is everyone's pool of neighbours
            keep = np.sort(np.random.default_rng(self.seed).choice(keep, KNN_POOL, replace=False))
        knn.neighbours_ = vectors[keep].tocsr()
        return knn, vectors

    @staticmethod
    def _neighbourhood(knn, query):
        """CSR (n, n_items) float32: the mean vector of each query vector's nearest fitted customers."""
        import scipy.sparse as sp

        nearest = knn.nearest(query)
        width = max(nearest.shape[1], 1)
        mix = sp.csr_matrix(
            (np.full(nearest.size, 1.0 / width), nearest.ravel(), np.arange(0, nearest.size + 1, width)),
            shape=(query.shape[0], knn.neighbours_.shape[0]),
        )
        return (mix @ knn.neighbours_).astype(np.float32).tocsr()

    def _knn_feature(self, values):
        """The explore part's neighbour input: log1p of the neighbourhood value over its mean at fit."""
        return np.log1p(np.asarray(values, np.float32) / np.float32(self.knn_scale_))

    def _candidates(self, feats):
        """The customer's items the repeat part scores in training and that make their embedding: the
        ``max_candidates`` of highest TIFU value (all of them when fewer), in item order."""
        if len(feats) <= self.max_candidates:
            return np.arange(len(feats))
        tifu = feats[:, RF.ITEM_FEATURES.index("tifu")]
        return np.sort(np.argsort(-tifu, kind="stable")[: int(self.max_candidates)])

    def _train_basket(self, ex, progress, epoch_callback, started):
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        sold = ex["sold_items"]
        n_feat, n_cust = ex["feats"].shape[1], ex["customer"].shape[1]
        self.feat_mean_, self.feat_std_ = ex["feats"].mean(0), ex["feats"].std(0) + 1e-6
        self.cust_mean_, self.cust_std_ = ex["customer"].mean(0), ex["customer"].std(0) + 1e-6
        init = keras.initializers.GlorotUniform(seed=self.seed)
        h, d = int(self.hidden), int(self.basket_dim)
        var = {
            "w1": tf.Variable(init((n_feat + n_cust, h))),
            "b1": tf.Variable(tf.zeros(h)),
            "w2": tf.Variable(keras.initializers.GlorotUniform(seed=self.seed + 1)((h, h))),
            "b2": tf.Variable(tf.zeros(h)),
            "w3": tf.Variable(keras.initializers.GlorotUniform(seed=self.seed + 2)((h, 1))),
            "b3": tf.Variable(tf.zeros(1)),
            "emb": tf.Variable(keras.initializers.RandomNormal(stddev=0.05, seed=self.seed + 3)((self.n_items_, d))),
            # without item vectors the explore part is its popularity features and the gate alone
            "proj": tf.Variable(
                keras.initializers.GlorotUniform(seed=self.seed + 4)((d, d)) if self.item_vectors else tf.zeros((d, d))
            ),
            "item_bias": tf.Variable(tf.zeros(self.n_items_)),
            "pop_w": tf.Variable(tf.ones(len(RF.POPULARITY)) / len(RF.POPULARITY)),
            "gate_w": tf.Variable(tf.zeros(n_cust)),
            "gate_b": tf.Variable(0.0),
            "knn_w": tf.Variable(0.5 if self.explore_neighbours else 0.0),
        }
        trained = [name for name in var if self.item_vectors or name not in ("emb", "proj", "item_bias")]
        trained = [name for name in trained if self.explore_neighbours or name != "knn_w"]
        knn = ex.get("knn")
        new_knn = self._knn_feature(ex["new_knn"]) if knn is not None else np.zeros(len(ex["new"]), np.float32)
        optimizer = keras.optimizers.Adam(learning_rate=self.basket_learning_rate, clipnorm=5.0)
        log_pop = ex["log_pop"]  # each example reads the popularity at its own cut-off
        feats = (ex["feats"] - self.feat_mean_) / self.feat_std_
        custs = ((ex["customer"] - self.cust_mean_) / self.cust_std_).astype(np.float32)
        tifu_col = RF.ITEM_FEATURES.index("tifu")

        @tf.function(reduce_retracing=True)
        def step(
            feat, cust_rows, items, weights, seg, label, new, new_seg, new_pop, negs, neg_pop, log_q, n_ex, nk, gk
        ):
            with tf.GradientTape() as tape:
                x = tf.concat([feat, tf.gather(cust_rows, seg)], axis=1)
                hid = tf.nn.relu(tf.matmul(x, var["w1"]) + var["b1"])
                hid = tf.nn.relu(tf.matmul(hid, var["w2"]) + var["b2"])
                rep = tf.squeeze(tf.matmul(hid, var["w3"]), 1) + var["b3"]
                emb = tf.gather(var["emb"], items) * weights[:, None]
                user = (
                    tf.math.unsorted_segment_sum(emb, seg, n_ex)
                    / tf.maximum(tf.math.unsorted_segment_sum(weights, seg, n_ex), 1e-9)[:, None]
                )
                user = tf.matmul(user, var["proj"])
                gate = tf.linalg.matvec(cust_rows, var["gate_w"]) + var["gate_b"]
                new_logit = (
                    tf.reduce_sum(tf.gather(user, new_seg) * tf.gather(var["emb"], new), 1)
                    + tf.gather(var["item_bias"], new)
                    + tf.linalg.matvec(new_pop, var["pop_w"])
                    + tf.gather(gate, new_seg)
                    + var["knn_w"] * nk
                )
                neg_logit = (
                    tf.matmul(user, tf.gather(var["emb"], negs), transpose_b=True)
                    + tf.gather(var["item_bias"], negs)[None, :]
                    + tf.linalg.matvec(neg_pop, var["pop_w"])
                    + gate[:, None]
                    + var["knn_w"] * gk
                    + log_q[:, None]
                )
                # log partition per example: its repeat candidates, its new targets, the sampled new items
                high = tf.maximum(
                    tf.maximum(
                        tf.math.unsorted_segment_max(rep, seg, n_ex),
                        tf.math.unsorted_segment_max(new_logit, new_seg, n_ex),
                    ),
                    tf.reduce_max(neg_logit, axis=1),
                )
                high = tf.stop_gradient(high)
                total = (
                    tf.math.unsorted_segment_sum(tf.exp(rep - tf.gather(high, seg)), seg, n_ex)
                    + tf.math.unsorted_segment_sum(tf.exp(new_logit - tf.gather(high, new_seg)), new_seg, n_ex)
                    + tf.reduce_sum(tf.exp(neg_logit - high[:, None]), axis=1)
                )
                log_z = tf.math.log(total) + high
                label_f = tf.cast(label, tf.float32)
                n_targets = tf.math.unsorted_segment_sum(label_f, seg, n_ex) + tf.math.unsorted_segment_sum(
                    tf.ones_like(new_logit), new_seg, n_ex
                )
                target_sum = tf.math.unsorted_segment_sum(rep * label_f, seg, n_ex) + tf.math.unsorted_segment_sum(
                    new_logit, new_seg, n_ex
                )
                loss = tf.reduce_mean(log_z - target_sum / tf.maximum(n_targets, 1.0))
                # the item vectors and biases see few examples each: kept small (weight decay on the rows used)
                used = tf.concat([items, new, negs], 0)
                loss += self.l2 * (
                    tf.reduce_mean(tf.reduce_sum(tf.square(tf.gather(var["emb"], used)), 1))
                    + tf.reduce_mean(tf.square(tf.gather(var["item_bias"], used)))
                )
            variables = [var[name] for name in trained]
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        seg_starts = np.searchsorted(ex["seg"], np.arange(len(custs) + 1))
        new_starts = np.searchsorted(ex["new_seg"], np.arange(len(custs) + 1))
        self.history_, epoch_times = [], []
        for epoch in range(1, int(self.basket_epochs) + 1):
            t0 = time.perf_counter()
            order = rng.permutation(len(custs))
            losses, n_batches = [], -(-len(order) // int(self.examples_per_batch))
            for number, begin in enumerate(range(0, len(order), int(self.examples_per_batch)), start=1):
                rows = np.sort(order[begin : begin + int(self.examples_per_batch)])
                cand = np.concatenate([np.arange(seg_starts[r], seg_starts[r + 1]) for r in rows])
                newi = np.concatenate([np.arange(new_starts[r], new_starts[r + 1]) for r in rows])
                local = np.searchsorted(rows, ex["seg"][cand])
                new_local = np.searchsorted(rows, ex["new_seg"][newi])
                negs = rng.choice(sold, size=int(self.n_negatives), replace=True)
                log_q = np.log(ex["n_sold"][rows] / float(self.n_negatives)).astype(np.float32)
                weights = np.maximum(ex["feats"][cand, tifu_col], 1e-6).astype(np.float32)
                if knn is not None:
                    neg_knn = self._knn_feature(knn[rows][:, negs].toarray())
                else:
                    neg_knn = np.zeros((len(rows), len(negs)), np.float32)
                loss = step(
                    tf.constant(feats[cand].astype(np.float32)),
                    tf.constant(custs[rows]),
                    tf.constant(ex["items"][cand].astype(np.int32)),
                    tf.constant(weights),
                    tf.constant(local.astype(np.int32)),
                    tf.constant(ex["label"][cand]),
                    tf.constant(ex["new"][newi].astype(np.int32)),
                    tf.constant(new_local.astype(np.int32)),
                    tf.constant(log_pop[ex["cut"][ex["new_seg"][newi]], ex["new"][newi]]),
                    tf.constant(negs.astype(np.int32)),
                    tf.constant(log_pop[ex["cut"][rows]][:, negs]),
                    tf.constant(log_q),
                    tf.constant(len(rows), dtype=tf.int32),
                    tf.constant(new_knn[newi]),
                    tf.constant(neg_knn),
                )
                losses.append(float(loss))
                per_batch = (time.perf_counter() - t0) / number
                eta = per_batch * (n_batches - number + n_batches * (int(self.basket_epochs) - epoch))
                progress.step(
                    "batches", number, n_batches, epoch=epoch, metrics={"loss": float(np.mean(losses))}, eta=eta
                )
            self._weights = {name: v.numpy() for name, v in var.items()}
            self._set_network_arrays()
            epoch_times.append(time.perf_counter() - t0)
            metrics = {"loss": float(np.mean(losses))}
            if epoch_callback is not None:
                value = epoch_callback(epoch, self)
                if value is not None:
                    metrics["validation"] = float(value)
            elapsed = time.perf_counter() - started
            eta = float(np.mean(epoch_times)) * (int(self.basket_epochs) - epoch)
            self.history_.append(
                {"epoch": epoch, **metrics, "elapsed": round(elapsed, 1), "seconds": round(epoch_times[-1], 1)}
            )
            self._report(epoch, metrics, elapsed, eta, progress)
        self.seconds_per_epoch_ = float(np.mean(epoch_times)) if epoch_times else 0.0

    def _set_network_arrays(self):
        for name, value in self._weights.items():
            setattr(self, f"net_{name}_", np.asarray(value, np.float32))

    def _log(self, text):
        if self.verbose:
            print(f"[deep] {text}", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- score
    def score(self, histories, event_types=None, timestamps=None, orders=None, now=None, **context):
        """Logits (n, n_items) of each item being in the customer's next basket (basket mode), or of
        being the next item (sequential mode; ``orders`` and ``now`` are then ignored).

        ``now`` (seconds since the epoch): the reference time the repeat features are computed at, from
        the events strictly before it (default: the model's own, the midnight after the newest purchase it
        was fitted on); serving passes its scoring time, so days since, how due and so on are current.
        """
        self._check_fitted()
        if not self.basket_mode:
            return super().score(histories, event_types, timestamps)
        return self._basket_scores(histories, timestamps, orders, now)

    def score_items(self, histories, items, event_types=None, timestamps=None, orders=None, now=None, **context):
        """``score(...)[:, items]``, what explanations need."""
        scores = self.score(histories, event_types, timestamps, orders, now)
        return np.asarray(scores)[:, np.asarray(items, np.int64)]

    def predict_proba(self, histories, event_types=None, timestamps=None, orders=None, now=None, **context):
        """Softmax of the logits over the catalogue."""
        if not self.basket_mode:
            return super().predict_proba(histories, event_types, timestamps)
        return _softmax_rows(np.asarray(self.score(histories, event_types, timestamps, orders, now), np.float32))

    def _repeat_logits(self, feats, customers, rows):
        """The repeat part over stacked (customer, item) rows: ``feats`` (m, n_feat), ``customers`` (n, n_cust)
        raw features, ``rows`` (m,) the customer of each row. One pass of the network for a whole chunk."""
        cust = (customers - self.cust_mean_) / self.cust_std_
        x = np.concatenate([(feats - self.feat_mean_) / self.feat_std_, cust[rows]], axis=1)
        hid = np.maximum(x @ self.net_w1_ + self.net_b1_, 0.0)
        hid = np.maximum(hid @ self.net_w2_ + self.net_b2_, 0.0)
        return ((hid @ self.net_w3_)[:, 0] + self.net_b3_[0]).astype(np.float32)

    def _user_vector(self, items, feats):
        keep = self._candidates(feats)
        weights = np.maximum(feats[keep, RF.ITEM_FEATURES.index("tifu")], 1e-6)
        user = (weights @ self.net_emb_[items[keep]]) / max(weights.sum(), 1e-9)
        return (user @ self.net_proj_).astype(np.float32)

    def parts(self, history, timestamps, orders=None, now=None):
        """(items bought before, their repeat logits, customer features, user vector) of one customer."""
        now = self.now_ if now is None else float(now)
        items, feats, customer = RF.customer_features(history, timestamps, orders, now, self.popularity_)
        if not len(items):
            return items, np.zeros(0, np.float32), customer, np.zeros(self.net_proj_.shape[0], np.float32)
        rep = self._repeat_logits(feats, customer[None, :], np.zeros(len(items), np.int64))
        return items, rep, customer, self._user_vector(items, feats)

    def _basket_scores(self, histories, timestamps, orders, now=None):
        """The chunk's features at once (RF.chunk_features: a few sorts over its events, not NumPy per
        customer), then one pass of the repeat network over every (customer, bought item) row and one matrix
        product for the explore part."""
        if timestamps is None:
            raise ValueError("the deep model fitted on orders scores histories with their timestamps (and orders)")
        now = self.now_ if now is None else float(now)
        n = len(histories)
        rows, items, feats, customers = RF.chunk_features(histories, timestamps, orders, now, self.popularity_)
        users = np.zeros((n, self.net_proj_.shape[0]), np.float32)
        if self.item_vectors and len(rows):
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            for row, a, b in zip(rows[starts], starts, np.r_[starts[1:], len(rows)]):
                users[row] = self._user_vector(items[a:b], feats[a:b])
        gate = ((customers - self.cust_mean_) / self.cust_std_) @ self.net_gate_w_ + self.net_gate_b_
        base = self.net_item_bias_ + np.log1p(self.popularity_) @ self.net_pop_w_
        # base + gate added in float32, as the array is: a float64 gate made NumPy cast every element of the
        # (n, n_items) sum on the way, the slowest line of serving at 100,000 items
        out = np.empty((n, len(base)), np.float32)
        np.add(base.astype(np.float32, copy=False)[None, :], gate.astype(np.float32)[:, None], out=out)
        if self.item_vectors:  # (without them the projection is zero: every user vector is 0)
            # float32 already (users and the embeddings are): no 200 MB copy of the product at 100,000 items
            out += (users @ self.net_emb_.T).astype(np.float32, copy=False)
        neighbourhood = None
        if self._uses_knn:
            knn = self._knn()
            cut = [
                RF.before(h, timestamps[r], None if orders is None else orders[r], now) for r, h in enumerate(histories)
            ]
            query = knn._vectors(
                [c[0] for c in cut], None if orders is None else [c[2] for c in cut], [c[1] for c in cut]
            )
            neighbourhood = self._neighbourhood(knn, query).toarray()
        if self.explore_neighbours:
            out += float(self.net_knn_w_) * self._knn_feature(neighbourhood)
        if len(rows):
            out[rows, items] = self._repeat_logits(feats, customers, rows)
        if self.repeat_rank == "tifuknn" and len(rows):
            personal = np.asarray(query[rows, items]).ravel()
            _rank_bought_by(out, KNN_ALPHA * personal + (1.0 - KNN_ALPHA) * neighbourhood[rows, items], rows, items)
        if self.explore_rank == "tifuknn":
            _rank_new_by(out, neighbourhood, rows, items)
        return out

    def explain(self, history, items):
        """Sequential mode: deep.py's. Basket mode: the item's own last purchase where the customer bought
        it (its score rests on its own purchases), else the history item whose embedding is closest."""
        if not self.basket_mode:
            return super().explain(history, items)
        history = np.asarray(history, np.int64)
        out = np.zeros(len(items), np.int64)
        for row, item in enumerate(np.asarray(items, np.int64)):
            where = np.flatnonzero(history == item)
            if len(where):
                out[row] = where[-1]
            elif len(history):
                sims = self.net_emb_[history] @ self.net_emb_[item]
                out[row] = len(history) - 1 - int(np.argmax(sims[::-1]))
        return out

    # ---------------------------------------------------------- persistence
    _NET = ("w1", "b1", "w2", "b2", "w3", "b3", "emb", "proj", "item_bias", "pop_w", "gate_w", "gate_b", "knn_w")

    def _knn(self):
        """The TIFU-KNN neighbours at the model's reference time (rebuilt from the saved vectors)."""
        from .tifuknn import TIFUKNNRecommender

        if getattr(self, "knn_", None) is None:
            knn = TIFUKNNRecommender(group_size=3, within_decay=0.9, group_decay=0.9, n_neighbors=self._knn_size)
            knn.n_items_ = self.n_items_
            arrays = {name: getattr(self, name) for name in ("knn_data", "knn_indices", "knn_indptr")}
            knn.neighbours_ = csr_from_state("knn", arrays, (len(arrays["knn_indptr"]) - 1, self.n_items_))
            self.knn_ = knn
        return self.knn_

    def _state(self):
        if not self.basket_mode:
            return {**super()._state(), "basket_mode_": np.array(False)}
        state = {f"net_{name}_": getattr(self, f"net_{name}_") for name in self._NET}
        for name in ("feat_mean_", "feat_std_", "cust_mean_", "cust_std_", "popularity_"):
            state[name] = getattr(self, name)
        state["now_"] = np.array(self.now_)
        if self._uses_knn:
            state.update(csr_to_state("knn", self._knn().neighbours_))
        if self.explore_neighbours:
            state["knn_scale_"] = np.array(self.knn_scale_)
        state["basket_mode_"] = np.array(True)
        return state

    def _set_state(self, arrays):
        if not bool(arrays.get("basket_mode_", False)):  # also a version saved before the basket mode existed
            self.basket_mode_ = False
            super()._set_state(arrays)
            return
        BaseRecommender._set_state(self, {name: arrays[name] for name in arrays.keys()})
        self.basket_mode_ = True
        self.now_ = float(arrays["now_"])
        self.knn_ = None
        if "knn_scale_" in arrays:
            self.knn_scale_ = float(arrays["knn_scale_"])

    def save(self, directory):
        if not self.basket_mode:
            return super().save(directory)
        return BaseRecommender.save(self, directory)

    def _after_load(self, directory):
        if not self.basket_mode:
            super()._after_load(directory)


def _softmax_rows(logits):
    """Each row's softmax of a float32 (n, n_items) array, written over it, BLOCK_ROWS rows at a time.

    In float32 (each row's sum too, pairwise as NumPy sums): within a few float32 roundings of the float64
    softmax (a relative error of about 1e-6 per probability), at under half its cost, since NumPy's float32
    exp is vectorised and no float64 copy is made. An item at -inf gets 0."""
    for a in range(0, len(logits), BLOCK_ROWS):
        block = logits[a : a + BLOCK_ROWS]
        block -= block.max(axis=1, keepdims=True)
        np.exp(block, out=block)
        block /= block.sum(axis=1, keepdims=True)  # (pairwise in float32: a float64 sum cast every element)
    return logits


def _rank_bought_by(logits, value, rows, items):
    """In place: each row's logits at its ``(rows, items)`` (the items it bought before) permuted so that
    their order is ``value``'s (one per pair; higher first, ties in the logits' order); the values, so the
    softmax's mass on them and where they fall among the new items, stay the row's."""
    current = logits[rows, items]
    by_value = np.lexsort((-current, -value, rows))  # per row: its items in value's order
    by_logit = np.lexsort((-current, rows))  # per row: its logits, highest first
    logits[rows[by_value], items[by_value]] = current[by_logit]
    return logits


def _rank_new_by(logits, value, bought_rows, bought_items, top=RANK_TOP):
    """In place: each row's new items (not at ``(bought_rows, bought_items)``) take the row's own logits of
    new items in the order of ``value`` (higher first; ties and items without value in the logits' order).

    A permutation of each row's logits over the union of its ``top`` new items by logit and its ``top`` by
    value: the values are the model's, so its softmax, its buy-again logits and how many new items reach
    any top ``top`` are unchanged; which new items they are, and their order, is ``value``'s. An item
    outside both keeps its logit (it is below every top-``top`` value either way).
    """
    n, n_items = logits.shape
    top = min(int(top), n_items)
    if not n or not top:
        return logits
    new_logits = logits.copy()
    new_logits[bought_rows, bought_items] = -np.inf
    rank = np.where(np.isfinite(value), value, 0.0).astype(np.float64)
    rank[bought_rows, bought_items] = -np.inf
    by_logit = np.argpartition(-new_logits, top - 1, axis=1)[:, :top]
    by_value = np.argpartition(-rank, top - 1, axis=1)[:, :top]
    for row in range(n):
        mine = by_logit[row][np.isfinite(new_logits[row, by_logit[row]])]
        theirs = by_value[row][rank[row, by_value[row]] > 0]
        union = np.union1d(mine, theirs)
        if not len(union):
            continue
        values = np.sort(logits[row, union])[::-1]
        order = np.lexsort((-logits[row, union], -rank[row, union]))  # value first, then the logit
        logits[row, union[order]] = values
    return logits
