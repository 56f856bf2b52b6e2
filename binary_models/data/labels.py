"""Class names of classification models: ImageNet's 1,000 (the list GluonCV ships, offline), the embedded
digits' '0'..'9', or one name per line of a file."""
from ..errors import UsageError

DIGITS_NAMES = tuple(str(d) for d in range(10))


def imagenet_names():
    """ILSVRC2012's 1,000 class names in training-label order (``gluoncv.data.ImageNet1kAttr``, the list
    GluonCV's own ImageNet models use for ``net.classes``)."""
    from gluoncv.data import ImageNet1kAttr
    return list(ImageNet1kAttr().classes)


def read_names(path, num_classes=None):
    """The non-empty lines of ``path``, stripped; a :class:`UsageError` when it cannot be read or, given
    ``num_classes``, does not hold that many names."""
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError("cannot read --classes-file %s: %s" % (path, err))
    if num_classes is not None and len(names) != num_classes:
        raise UsageError("classes_file %s has %d names, the model predicts %d classes"
                         % (path, len(names), num_classes), "classes_file")
    return names


def class_names(num_classes, record=None):
    """The names of a model's ``num_classes`` outputs, from what its run file ``record`` says: the ones it
    records (``class_names``), the digits', ImageNet's for 1,000 classes; None when nothing is known."""
    record = record or {}
    if record.get("class_names") and len(record["class_names"]) == num_classes:
        return list(record["class_names"])
    if record.get("dataset") == "digits" and num_classes == len(DIGITS_NAMES):
        return list(DIGITS_NAMES)
    if num_classes == 1000:
        return imagenet_names()
    return None
