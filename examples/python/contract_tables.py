#!/usr/bin/env python3
"""Prints, from contracts/published/asyncapi.json, one Markdown table per party role: every
message type it sends or hears, with the first sentence of its description and a link to its
JSON Schema. docs/integrators.md carries this output between its `party-tables` markers (the
CI test tests/tests/python_clients.rs checks they are equal).

Usage: python3 examples/python/contract_tables.py
"""

import json
import re
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parents[2] / "contracts" / "published"
# The link from docs/ to the schemas.
SCHEMAS = "../contracts/published/schemas"
ROLES = [
    ("The portal", "portalSends", "portalReceives"),
    ("An issuance desk", "deskSends", "deskReceives"),
    ("An authority on the bus", "authoritySends", "authorityReceives"),
]


def first_sentence(summary, message_type):
    """The summary's first sentence (up to a full stop outside parentheses)."""
    text = summary.replace(f"`{message_type}`: ", "", 1).replace("\n", " ")
    text = re.sub(r"\[(`[^`]+`)\]", r"\1", text)  # rustdoc links: just the name
    depth = 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and c == "." and text[i + 1 : i + 2] in (" ", ""):
            text = text[:i]
            break
    return text.replace("|", "\\|")


def main():
    document = json.loads((PUBLISHED / "asyncapi.json").read_text())
    messages = document["components"]["messages"]
    for title, sends, receives in ROLES:
        print(f"#### {title}\n")
        print("| message type | direction | what it is | schema |")
        print("|---|---|---|---|")
        for operation, direction in ((sends, "sends"), (receives, "hears")):
            for ref in document["operations"][operation]["messages"]:
                name = ref["$ref"].rsplit("/", 1)[-1]
                what = first_sentence(messages[name].get("summary", ""), name)
                link = f"[{name}.json]({SCHEMAS}/{name}.json)"
                print(f"| `{name}` | {direction} | {what} | {link} |")
        print()


if __name__ == "__main__":
    main()
