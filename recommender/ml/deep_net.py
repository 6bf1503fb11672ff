"""Keras 3 network of the deep model. TensorFlow is imported inside functions
only, so importing ``recommender.ml`` never loads it."""

from __future__ import annotations

import numpy as np


def build_network(
    n_items,
    maxlen,
    embed_dim,
    n_blocks,
    n_heads,
    dropout,
    n_lags,
    attr_table=None,
    n_attrs=0,
    n_event_types=0,
    n_gap_buckets=0,
):
    """Causal transformer over item sequences (SASRec) with additive side inputs.

    Input embedding = item + position (+ mean attribute + event type + time-gap
    bucket embeddings when given). Output logits use the tied item embedding,
    an item bias, and the sparse transition prior (see ``output_logits``).
    """
    import keras
    import tensorflow as tf
    from keras import layers

    class Block(layers.Layer):
        """Pre-norm causal self-attention + position-wise feed-forward."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm1 = layers.LayerNormalization(epsilon=1e-6)
            self.attn = layers.MultiHeadAttention(n_heads, embed_dim // n_heads, dropout=dropout)
            self.norm2 = layers.LayerNormalization(epsilon=1e-6)
            self.ff1 = layers.Dense(embed_dim, activation="gelu")
            self.ff2 = layers.Dense(embed_dim)
            self.drop = layers.Dropout(dropout)

        def call(self, x, mask, training=False):
            y = self.norm1(x)
            y = self.attn(y, y, attention_mask=mask, training=training)
            x = x + self.drop(y, training=training)
            y = self.ff2(self.drop(self.ff1(self.norm2(x)), training=training))
            return x + self.drop(y, training=training)

    class SequenceNet(keras.Model):
        def __init__(self):
            super().__init__()
            self.item_emb = layers.Embedding(n_items + 1, embed_dim, name="items")
            self.pos_emb = layers.Embedding(maxlen, embed_dim, name="positions")
            self.attr_emb = layers.Embedding(n_attrs + 1, embed_dim, name="attributes") if n_attrs else None
            self.event_emb = layers.Embedding(n_event_types + 1, embed_dim, name="events") if n_event_types else None
            self.gap_emb = layers.Embedding(n_gap_buckets, embed_dim, name="gaps") if n_gap_buckets else None
            self.blocks = [Block(name=f"block{i}") for i in range(n_blocks)]
            self.drop = layers.Dropout(dropout)
            self.norm = layers.LayerNormalization(epsilon=1e-6)
            self.item_bias = self.add_weight(shape=(n_items,), initializer="zeros", name="item_bias")
            # rows: per-lag [log1p(count), probability] weights, then the aggregated
            # baseline score; start as the transition baseline (sharp in log1p(score))
            init = np.zeros((n_lags + 1, 2), dtype="float32")
            init[n_lags, 0] = 3.0
            self.prior_w = self.add_weight(
                shape=(n_lags + 1, 2),
                initializer=keras.initializers.Constant(init),
                name="prior_w",
            )
            self.attr_table = None if attr_table is None else tf.constant(attr_table, dtype=tf.int32)

        def call(self, items, events=None, gaps=None, training=False):
            valid = tf.cast(items > 0, tf.float32)
            x = self.item_emb(items) * (embed_dim**0.5)
            if self.attr_emb is not None:
                attrs = tf.gather(self.attr_table, items)  # (B, L, A), 0 = padding
                attr_mask = tf.cast(attrs > 0, tf.float32)[..., None]
                summed = tf.reduce_sum(self.attr_emb(attrs) * attr_mask, axis=2)
                x = x + summed / tf.maximum(tf.reduce_sum(attr_mask, axis=2), 1.0)
            if self.event_emb is not None and events is not None:
                x = x + self.event_emb(events)
            if self.gap_emb is not None and gaps is not None:
                x = x + self.gap_emb(gaps)
            x = (x + self.pos_emb(tf.range(tf.shape(items)[1]))[None]) * valid[..., None]
            x = self.drop(x, training=training)
            length = tf.shape(items)[1]
            causal = tf.linalg.band_part(tf.ones((length, length), tf.bool), -1, 0)
            mask = tf.logical_and(causal[None], (items > 0)[:, None, :])
            # a padded query row has no visible key; let it see itself to avoid NaNs
            mask = tf.logical_or(mask, tf.eye(length, dtype=tf.bool)[None])
            for block in self.blocks:
                x = block(x, mask, training=training) * valid[..., None]
            return self.norm(x)

        def output_logits(self, hidden, columns, prior):
            """Logits over ``columns`` (None = all items) plus the transition prior.

            ``prior`` = (indices (nnz, 2) into the logits, lag (nnz,), features
            (nnz, 2)); the prior term is sum_f w[lag, f] * feature_f, i.e.
            weights learned per lag: log-count and probability residuals.
            """
            table = self.item_emb.embeddings[1:]
            bias = self.item_bias
            if columns is not None:
                table, bias = tf.gather(table, columns), tf.gather(bias, columns)
            logits = tf.matmul(hidden, table, transpose_b=True) + bias
            if prior is not None:
                indices, lag, feats = prior
                update = tf.reduce_sum(feats * tf.gather(self.prior_w, lag), axis=1)
                logits = tf.tensor_scatter_nd_add(logits, indices, update)
            return logits

    net = SequenceNet()
    dummy = np.ones((1, maxlen), dtype="int32")
    net(dummy, dummy if n_event_types else None, dummy if n_gap_buckets else None)  # build weights
    return net


def make_steps(net, learning_rate, full_softmax):
    """tf.functions for one training step and for scoring the last position."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=5.0)
    # fixed dynamic-shape signatures: one graph for every batch, so scores do not
    # depend on which shapes were traced first (exact save/load round trips)
    seq = tf.TensorSpec((None, None), tf.int32)
    prior_spec = (
        tf.TensorSpec((None, 2), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None, 2), tf.float32),
    )
    vec = tf.TensorSpec((None,), tf.int32)

    @tf.function(
        input_signature=[
            seq,
            seq,
            seq,
            tf.TensorSpec((None, 2), tf.int32),
            vec,
            vec,
            prior_spec,
        ]
    )
    def train_step(items, events, gaps, positions, targets, columns, prior):
        with tf.GradientTape() as tape:
            hidden = tf.gather_nd(net(items, events, gaps, training=True), positions)
            logits = net.output_logits(hidden, None if full_softmax else columns, prior)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    @tf.function(input_signature=[seq, seq, seq, prior_spec])
    def score_step(items, events, gaps, prior):
        hidden = net(items, events, gaps, training=False)[:, -1, :]
        return net.output_logits(hidden, None, prior)

    return train_step, score_step
