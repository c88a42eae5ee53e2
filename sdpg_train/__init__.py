"""The SDPG learner: rollouts, teacher views, the chunked full-vocabulary head, losses, trainer, evaluation."""
