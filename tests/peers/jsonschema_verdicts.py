#!/usr/bin/env python3
"""The cross-check's independent verdicts: reads one JSON case per line on stdin,
{"definitions": {...}, "docs": ["<json text>", ...]}, and prints one line per case with a
1 (valid) or 0 (invalid) per document under JSON Schema draft 4 (Python's jsonschema) for
#/definitions/S. Numbers are read as Decimal, so comparisons are exact as wsgate's are."""

import json
import sys
from decimal import Decimal

import jsonschema


def main():
    for line in sys.stdin:
        case = json.loads(line, parse_float=Decimal)
        schema = {"definitions": case["definitions"], "$ref": "#/definitions/S"}
        validator = jsonschema.Draft4Validator(schema)
        verdicts = []
        for doc in case["docs"]:
            instance = json.loads(doc, parse_float=Decimal)
            verdicts.append("1" if validator.is_valid(instance) else "0")
        print("".join(verdicts), flush=True)


if __name__ == "__main__":
    main()
