"""PASCAL VOC 2007/2012 as MMClassification reads it for multi-label classification.

    root/JPEGImages/<id>.jpg
    root/ImageSets/Main/{train,val,trainval,test}.txt   one image id per line
    root/Annotations/<id>.xml                            <object><name>dog</name><difficult>0</difficult></object> ...

An image's labels are the classes of its objects; a class shown only by objects
marked difficult goes to the `difficult` column instead, which training treats
as absent and the metrics leave out (MMPretrain's VOC dataset and metrics).

An annotation is read in whatever encoding its XML declaration (or byte-order mark) names, as
XML allows. An image id is a plain name: one that leads out of JPEGImages/ and Annotations/
(a / or ..), or that the list holds twice, is refused with its line.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import datasets

from hfcls.data.columns import DIFFICULT
from hfcls.data.formats.common import check_listed_once, class_ids, image_features, read_classes, read_text
from hfcls.errors import HfclsError

VOC_CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def voc(root: str, split: str = "trainval", classes: list | str | None = None):
    """The images of `root/ImageSets/Main/<split>.txt` with the classes of their XML annotations;
    `classes` (a list or a text file) for another class list than VOC's 20."""
    base = Path(root)
    ids_file = base / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise HfclsError(
            f"voc {root}: no image list {ids_file}; root is the VOC2007 or VOC2012 folder (holding "
            "JPEGImages/, Annotations/ and ImageSets/Main/) and split one of its lists"
        )
    names = read_classes(classes, f"voc {root}") or VOC_CLASSES
    origin = f"classes {classes}" if classes is not None else "PASCAL VOC"
    index = {name: i for i, name in enumerate(names)}
    paths, labels, difficult, listed = [], [], [], {}
    for number, line in enumerate(read_text(ids_file, "image list").splitlines(), start=1):
        if not line.strip():
            continue
        image_id = line.split()[0]
        check_image_id(image_id, f"{ids_file} line {number}")
        check_listed_once(image_id, number, listed, f"{ids_file} line {number}")
        image = base / "JPEGImages" / f"{image_id}.jpg"
        if not image.is_file():
            raise HfclsError(f"{ids_file} line {number}: image {image} does not exist; check root and the list")
        shown, hard = read_objects(base / "Annotations" / f"{image_id}.xml", index, origin)
        paths.append(str(image.resolve()))
        labels.append(sorted(shown))
        difficult.append(sorted(hard - shown))
    if not paths:
        raise HfclsError(f"{ids_file} lists no images; an empty split cannot be used")
    features = image_features(names, multi_label=True)
    features[DIFFICULT] = features["label"]
    return datasets.Dataset.from_dict({"image": paths, "label": labels, DIFFICULT: difficult}, features=features)


def read_objects(xml_file: Path, index: dict, origin: str) -> tuple:
    """(ids of the classes of its objects not marked difficult, ids of those marked difficult)."""
    if not xml_file.is_file():
        raise HfclsError(f"annotation {xml_file} does not exist; every listed image needs its XML file")
    data = xml_file.read_bytes()
    text = xml_text(data)
    try:
        root = ET.fromstring(data)  # from the bytes: the parser decodes them as the file declares
    except ET.ParseError as error:
        line, column = error.position
        raise HfclsError(
            f"{xml_file} line {line}, column {column}: the XML does not parse ({error}); fix or replace the file"
        ) from None
    shown, hard = set(), set()
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        where = f"{xml_file} line {_line_of(text, f'<name>{name}</name>')}"
        ids = class_ids([name], index, where, origin)
        (hard if (obj.findtext("difficult") or "0").strip() == "1" else shown).update(ids)
    return shown, hard


def check_image_id(image_id: str, where: str) -> None:
    """An id names JPEGImages/<id>.jpg and Annotations/<id>.xml: a plain name."""
    if image_id in (".", "..") or "/" in image_id or "\\" in image_id:
        raise HfclsError(
            f"{where}: image id {image_id!r} leads out of JPEGImages/ and Annotations/; an id is "
            "a file name without its extension, such as 000005"
        )


def xml_text(data: bytes) -> str:
    """An XML file's text for finding line numbers: decoded as its byte-order mark or declaration
    says (the parser itself reads the bytes)."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    declared = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']", data)
    try:
        return data.decode(declared.group(1).decode() if declared else "utf-8", errors="replace")
    except LookupError:  # an encoding Python does not know: the parser says so
        return data.decode("utf-8", errors="replace")


def _line_of(text: str, fragment: str) -> int:
    """The line of `fragment` in `text` (ElementTree keeps no line numbers); 1 when not found verbatim."""
    position = text.find(fragment)
    return text.count("\n", 0, position) + 1 if position >= 0 else 1
