"""What the trainer's tests share: tiny runs on the ``example`` dataset."""

TINY_GRU = dict(model_config={"units": 4, "vocab_size": 10, "embedding_dim": 3},
                dataset_options={"size": 16}, batch_size=8, steps_per_epoch=2, verbose=0,
                plots=False, deterministic=False)
TINY_SEQ2SEQ = dict(model_config={"units": 4, "source_vocab_size": 10, "target_vocab_size": 10,
                                  "source_embedding_dim": 3, "target_embedding_dim": 3},
                    dataset_options={"size": 16}, batch_size=8, steps_per_epoch=2, verbose=0,
                    plots=False, deterministic=False)
