"""The learner core: rollouts and their tensors, group advantages, the teacher view, the chunked full-vocabulary
head, the value head and the context encoder. Nothing here knows about a particular method or the training loop."""
