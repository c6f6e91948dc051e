"""`python -m service.api`: the README's endpoint table; `--json`: the OpenAPI document."""

from __future__ import annotations

import json
import sys

from service.api.app import api_routes
from service.api.openapi import api_table, build_document


def main(argv: list[str]) -> None:
    document = build_document(api_routes())
    if argv == ["--json"]:
        print(json.dumps(document, indent=2))
    else:
        print(api_table(document), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
