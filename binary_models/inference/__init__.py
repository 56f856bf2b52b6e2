"""Inference: the converter to packed 1-bit models (:mod:`.convert`, its fusions as a table of rules), the
packed layers (:mod:`.packed_layers`), the native library's loader (:mod:`.native`), and classification and
detection of images (:mod:`.predict`, :mod:`.detect`)."""
