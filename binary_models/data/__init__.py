"""Data: classification sources (:mod:`.datasets`, the embedded :mod:`.digits`), the validation and inference
preprocessing (:mod:`.transforms`), VOC-format detection data (:mod:`.voc`) and class names (:mod:`.labels`)."""
