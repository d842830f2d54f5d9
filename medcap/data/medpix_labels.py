"""The per-image labels MedPix 2.0 records carry, as table columns of the MedPix loader.

Each `Descriptions.json` record has a `Type` ("CT"/"MR"), a `Location Category` ("Head", "Thorax", ...),
a `Location` ("Brain and Neuro", "Genitourinary", ...) and a `Description` with `Modality` (the detailed
modality: "MR - T2 weighted", "CT w/contrast (IV)", ...), `Plane` ("Axial", "Coronal", ...), `ACR Codes`,
`Age` and `Sex`. They become these columns (text as recorded, "" when missing):

| column              | record field                 | example                          |
|---------------------|------------------------------|----------------------------------|
| `modality`          | `Type`                       | "CT"                             |
| `modality_detail`   | `Description.Modality`       | "MR - T2 weighted"               |
| `plane`             | `Description.Plane`          | "Axial"                          |
| `location_category` | `Location Category`          | "Reproductive and Urinary System"|
| `location`          | `Location`                   | "Genitourinary"                  |
| `acr_code`          | `Description.ACR Codes`      | "8.-1"                           |
| `age`               | `Description.Age`            | "73"                             |
| `sex`               | `Description.Sex`            | "male"                           |

The labels are not part of the dataset fingerprint (image ids, captions and image files are), so adding
them changes no feature store and no run.
"""

from __future__ import annotations

from typing import Any

MEDPIX_LABEL_COLUMNS: tuple[str, ...] = ("modality", "modality_detail", "plane", "location_category", "location",
                                         "acr_code", "age", "sex")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return (value if isinstance(value, str) else str(value)).strip()


def medpix_labels(record: dict[str, Any]) -> dict[str, str]:
    """The label columns (`MEDPIX_LABEL_COLUMNS`) of one MedPix record; "" where a field is missing."""
    desc = record.get("Description") if isinstance(record.get("Description"), dict) else {}
    return {"modality": _text(record.get("Type")), "modality_detail": _text(desc.get("Modality")),
            "plane": _text(desc.get("Plane")), "location_category": _text(record.get("Location Category")),
            "location": _text(record.get("Location")), "acr_code": _text(desc.get("ACR Codes")),
            "age": _text(desc.get("Age")), "sex": _text(desc.get("Sex"))}
