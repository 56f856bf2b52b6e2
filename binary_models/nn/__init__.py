"""The building blocks: quantizers (:mod:`.quantization`), the quantized layers (:mod:`.layers`), the layer
defaults and their context manager (:mod:`.config`) and the normalisation choice (:mod:`.normalization`)."""
