"""Training: the run's bookkeeping (:mod:`.loop`), classification (:mod:`.imagenet`) and detection
(:mod:`.detection`) training, learning-rate schedules, optimizers, losses, Tang et al.'s regularization, and
MXNet's distributed kvstore (:mod:`.distributed`, processes started by :mod:`.launch`)."""
