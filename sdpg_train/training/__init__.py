"""Training: the :class:`~sdpg_train.training.trainer.SDPGTrainer` loop and what it needs around it (checkpoints,
logging, multi-process), plus the supervised warm start and the learned verifier."""
