"""One trial's work: data, model, loss, training loop, metrics, checkpoints.

Never imports ``search`` or ``analysis``; the training loop and the metrics never import ray.
"""

import os

# albumentations asks PyPI for a newer version at import, in every trial worker: a network
# call (and a warning on clusters without internet) that a sweep never needs.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
