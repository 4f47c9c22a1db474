"""One trial's work: data, model, loss, training loop, metrics, checkpoints.

Never imports ``search`` or ``analysis``; the training loop and the metrics never import ray.
"""
