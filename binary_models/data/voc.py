"""Pascal-VOC-format detection data: checking annotation files up front, loading them with GluonCV's
``VOCDetection``, and generating a small synthetic set for tests and demos.

GluonCV's ``VOCDetection`` fails late and obscurely on bad files (a missing ``<difficult>`` raises
``AttributeError`` while labels are preloaded) and drops boxes outside the image with only a log line;
:func:`check_voc_split` finds every such problem first and names the file. A VOC-format folder is
``<root>/{JPEGImages/<id>.jpg, Annotations/<id>.xml, ImageSets/Main/<split>.txt}``.

The synthetic set: coloured shapes (one shape and hue per class) with known boxes on textured
backgrounds, written as JPEG images, VOC XML annotations and ``ImageSets/Main/{train,val}.txt``::

    bm synthetic-voc OUTPUT_DIR [--train 64 --val 32 --size 128 --seed 0] [--voc-classes]

``--voc-classes`` writes it as Pascal VOC instead (:func:`make_synthetic_pascal_voc`): ``VOC2007`` and
``VOC2012`` folders and VOC class names, which GluonCV's ``VOCDetection`` and its unchanged
``train_ssd.py --dataset voc`` read as they read the real VOCdevkit.
"""
import math
import os
import xml.etree.ElementTree as ET

import numpy as np

from ..errors import UsageError

MAX_LISTED_PROBLEMS = 10


def split_file(root, split):
    return os.path.join(root, "ImageSets", "Main", split + ".txt")


def read_split(root, split):
    """The image ids listed in ``ImageSets/Main/<split>.txt``; a blank line is an error (GluonCV would
    read it as an image called '')."""
    path = split_file(root, split)
    if not os.path.isfile(path):
        raise UsageError("VOC split file not found: %s" % path)
    with open(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    for number, line in enumerate(lines, 1):
        if not line:
            raise UsageError("%s: line %d is empty (every line must be an image id)" % (path, number))
    return lines


def _number(element, tag):
    child = element.find(tag)
    if child is None or child.text is None:
        raise ValueError("has no <%s>" % tag)
    try:
        value = float(child.text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError("<%s> is %r, not a finite number" % (tag, child.text.strip()))
    return value


def image_size(path):
    """``(width, height)`` of an image file, read from its header; raises ``ValueError`` when the file is
    not an image (GluonCV would fail on it mid-epoch)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError("is not a readable image (%s)" % err)


def parse_annotation(path, classes=None):
    """``(width, height, [(name, difficult, (xmin, ymin, xmax, ymax)), ...])`` of one VOC XML file, with
    1-based VOC coordinates. Raises ``ValueError`` describing the first problem: what GluonCV's
    ``VOCDetection`` would crash on, drop, or (for names not in ``classes``) silently skip."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError("is not well-formed XML (%s)" % err)
    size = root.find("size")
    if size is None:
        raise ValueError("has no <size>")
    try:
        width, height = _number(size, "width"), _number(size, "height")
    except ValueError as err:
        raise ValueError("<size> %s" % err)
    if width <= 0 or height <= 0:
        raise ValueError("<size> is %gx%g" % (width, height))
    objects = []
    for index, obj in enumerate(root.iter("object"), 1):
        name_element = obj.find("name")
        name = (name_element.text or "").strip().lower() if name_element is not None else ""
        what = "object %d (%r)" % (index, name) if name else "object %d" % index
        if not name:
            raise ValueError("%s has no <name>" % what)
        if classes is not None and name not in classes:
            raise ValueError("%s: unknown class; the classes are %s" % (what, ", ".join(classes)))
        difficult = obj.find("difficult")
        if difficult is None or (difficult.text or "").strip() not in ("0", "1"):
            raise ValueError("%s needs <difficult>0</difficult> or 1 (GluonCV's VOCDetection requires it)"
                             % what)
        box = obj.find("bndbox")
        if box is None:
            raise ValueError("%s has no <bndbox>" % what)
        try:
            xmin, ymin, xmax, ymax = (_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as err:
            raise ValueError("%s: <bndbox> %s" % (what, err))
        # GluonCV's VOCDetection._validate_label on the 0-based box (each coordinate minus 1).
        if not (1 <= xmin <= width and xmin < xmax <= width + 1 and 1 <= ymin <= height and ymin < ymax <= height + 1):
            raise ValueError("%s: <bndbox> (%g, %g, %g, %g) is empty or outside the %gx%g image (VOC boxes are "
                             "1-based: 1 <= xmin < xmax <= width)" % (what, xmin, ymin, xmax, ymax, width, height))
        objects.append((name, int(difficult.text), (xmin, ymin, xmax, ymax)))
    if not objects:
        raise ValueError("has no <object> (SSD's transforms need at least one box per image)")
    return width, height, objects


def check_voc_split(root, split, classes=None):
    """Check every image and annotation of ``<root>`` split ``split``; return the class names found.
    Each image's header is read: it must be an image of the size its annotation's ``<size>`` states
    (GluonCV checks the boxes against ``<size>`` only). Raises :class:`UsageError` listing each bad file
    and its problem (nothing is skipped)."""
    problems, names = [], set()
    for image_id in read_split(root, split):
        annotation = os.path.join(root, "Annotations", image_id + ".xml")
        image = os.path.join(root, "JPEGImages", image_id + ".jpg")
        if not os.path.isfile(annotation):
            problems.append("%s: missing (listed in %s)" % (annotation, split_file(root, split)))
            continue
        try:
            width, height, objects = parse_annotation(annotation, classes)
            names.update(name for name, _, _ in objects)
        except ValueError as err:
            problems.append("%s: %s" % (annotation, err))
            continue
        if not os.path.isfile(image):
            problems.append("%s: missing (annotated in %s)" % (image, annotation))
            continue
        try:
            real = image_size(image)
        except ValueError as err:
            problems.append("%s: %s" % (image, err))
            continue
        if real != (width, height):
            problems.append("%s: <size> is %gx%g, but the image %s is %dx%d"
                            % ((annotation, width, height, image) + real))
    if problems:
        listed = problems[:MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        raise UsageError("bad VOC annotation%s in %s:\n  %s%s" % (
            "s" if len(problems) > 1 else "", split_file(root, split), "\n  ".join(listed),
            "\n  ... and %d more" % more if more else ""))
    return names


def voc_detection(root, splits, classes):
    """GluonCV's ``VOCDetection`` over ``splits`` (``[(subfolder or year, split), ...]``) with ``classes``.
    (``CustomVOCDetection(generate_classes=True)`` cannot be used: it sets the classes after its labels
    were loaded with VOC's, and its ``classes`` property still returns VOC's.)"""
    from gluoncv.data import VOCDetection
    if tuple(classes) == VOCDetection.CLASSES:
        return VOCDetection(root=root, splits=splits)
    folder_dataset = type("VOCFolderDetection", (VOCDetection,), {"CLASSES": tuple(classes)})
    return folder_dataset(root=root, splits=splits)


# ---- synthetic data -----------------------------------------------------------------------------------
# class: hue (OpenCV's 0-180 scale) of its colour.
SHAPE_HUES = {"circle": 0, "square": 60, "triangle": 120}


def _textured_background(rng, size):
    """Smooth coloured noise plus faint stripes: structure for a detector to learn to ignore."""
    import cv2
    coarse = rng.uniform(60, 200, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    period, angle = rng.uniform(6, 16), rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size]
    stripes = 12 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
    image += stripes[..., None] + rng.normal(0, 8, size=(size, size, 3))
    return np.clip(image * 0.6 + 40, 0, 255).astype(np.uint8)  # muted, so the shapes stand out


def _shape_colour(rng, hue):
    import cv2
    hsv = np.uint8([[[(hue + rng.randint(-8, 9)) % 180, rng.randint(190, 256), rng.randint(190, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _draw_shape(image, name, box, colour):
    """Draw ``name`` filling ``box`` = (x0, y0, x1, y1), 0-based pixels, x1/y1 inclusive."""
    import cv2
    x0, y0, x1, y1 = box
    if name == "circle":
        cv2.ellipse(image, (((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0 + 1, y1 - y0 + 1), 0), colour, -1)
    elif name == "square":
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
    else:
        cv2.fillPoly(image, [np.array([((x0 + x1) // 2, y0), (x0, y1), (x1, y1)], np.int32)], colour)


def _overlap(a, b):
    return min(a[2], b[2]) >= max(a[0], b[0]) and min(a[3], b[3]) >= max(a[1], b[1])


def _annotation_xml(image_id, size, objects):
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "synthetic"
    ET.SubElement(root, "filename").text = image_id + ".jpg"
    size_element = ET.SubElement(root, "size")
    for tag, value in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(size_element, tag).text = str(value)
    for name, (x0, y0, x1, y1) in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1 + 1), ("ymax", y1 + 1)):
            ET.SubElement(box, tag).text = str(value)  # VOC boxes are 1-based
    return ET.ElementTree(root)


def synthetic_image(rng, size, max_objects=5, min_size=0.15, max_size=0.35):
    """One image (BGR uint8) and its objects ``[(class, (x0, y0, x1, y1)), ...]`` (0-based, inclusive):
    1..``max_objects`` shapes of ``min_size``..``max_size`` times the image side whose boxes do not overlap."""
    image = _textured_background(rng, size)
    objects = []
    for _ in range(rng.randint(1, max_objects + 1)):
        for _attempt in range(20):
            side = int(rng.uniform(min_size, max_size) * size)
            w, h = side, int(side * rng.uniform(0.75, 1.33))
            h = min(h, size - 1)
            x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
            box = (x0, y0, x0 + w - 1, y0 + h - 1)
            if not any(_overlap(box, other) for _, other in objects):
                name = sorted(SHAPE_HUES)[rng.randint(len(SHAPE_HUES))]
                _draw_shape(image, name, box, _shape_colour(rng, SHAPE_HUES[name]))
                objects.append((name, box))
                break
    return image, objects


def _write_split(folder, split, count, rng, size, first_index, shapes, names=None):
    """Write ``count`` synthetic images (ids from ``first_index`` on) into ``folder``'s ``JPEGImages`` and
    ``Annotations``, list them in its ``ImageSets/Main/<split>.txt``; return the next free image index.
    ``names``: shape name -> the class name written (default: the shape names)."""
    import cv2
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    ids = []
    for index in range(first_index, first_index + count):
        image_id = "%06d" % index
        image, objects = synthetic_image(rng, size, **shapes)
        cv2.imwrite(os.path.join(folder, "JPEGImages", image_id + ".jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        named = [((names or {}).get(name, name), box) for name, box in objects]
        _annotation_xml(image_id, size, named).write(os.path.join(folder, "Annotations", image_id + ".xml"))
        ids.append(image_id)
    with open(split_file(folder, split), "w") as f:
        f.write("".join(i + "\n" for i in ids))
    return first_index + count


# The smallest shape side in pixels: a triangle of side 3 still has a box with xmin < xmax, and the
# default shapes (min_size 0.15) reach it at images of 20 pixels.
MIN_SHAPE_SIDE = 3
SYNTHETIC_MIN_SIZE = 20


def check_synthetic_arguments(num_train, num_val, size, min_size=0.15, **shapes):
    """Raise ``ValueError`` naming the argument when a synthetic set cannot be written as asked."""
    for name, count in (("num_train", num_train), ("num_val", num_val)):
        if not (isinstance(count, int) and count >= 1):
            raise ValueError("%s must be an integer >= 1, got %r" % (name, count))
    if not (isinstance(size, int) and int(min_size * size) >= MIN_SHAPE_SIDE):
        raise ValueError("size %r is too small: the smallest shapes (min_size %g x size) need %d pixels for "
                         "valid boxes" % (size, min_size, MIN_SHAPE_SIDE))


def make_synthetic_voc(root, num_train=64, num_val=32, size=128, seed=0, **shapes):
    """Write a synthetic VOC-format data set to ``root`` (splits ``train`` and ``val``); returns ``root``.
    ``shapes``: :func:`synthetic_image`'s ``max_objects``, ``min_size``, ``max_size``."""
    check_synthetic_arguments(num_train, num_val, size, **shapes)
    rng = np.random.RandomState(seed)
    index = 0
    for split, count in (("train", num_train), ("val", num_val)):
        index = _write_split(root, split, count, rng, size, index, shapes)
    return root


# The shapes under Pascal VOC names (GluonCV's VOCDetection skips objects of other names): the first three of
# VOCDetection.CLASSES, one per shape.
VOC_NAMES = {"circle": "aeroplane", "square": "bicycle", "triangle": "bird"}


def make_synthetic_pascal_voc(root, num_train=64, num_val=32, size=128, seed=0, **shapes):
    """Write the synthetic set in Pascal VOC's layout, as GluonCV's ``VOCDetection(root=root)`` and its
    ``train_ssd.py --dataset voc`` read it: training images split over ``VOC2007`` and ``VOC2012``
    ``trainval`` (GluonCV's 07+12), validation images in ``VOC2007`` ``test``; objects are named with
    :data:`VOC_NAMES` (aeroplane, bicycle, bird). Returns ``root``."""
    check_synthetic_arguments(num_train, num_val, size, **shapes)
    rng = np.random.RandomState(seed)
    index = 0
    for year, split, count in ((2007, "trainval", num_train - num_train // 2), (2012, "trainval", num_train // 2),
                               (2007, "test", num_val)):
        index = _write_split(os.path.join(root, "VOC%d" % year), split, count, rng, size, index, shapes,
                             VOC_NAMES)
    return root
