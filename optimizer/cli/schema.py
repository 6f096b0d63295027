"""`reflectopt schema summary|world-step|world-state|targets|run|experiment`: the JSON Schema of a record.

`--markdown` prints the record's fields as a table instead (the README's results section holds these
tables; a test keeps them equal).
"""

from __future__ import annotations

import json
import sys

from optimizer.experiment import Experiment
from optimizer.records import RunMeta, Summary, TargetRow, WorldState, WorldStep

SCHEMAS = {"summary": Summary, "world-step": WorldStep, "world-state": WorldState, "targets": TargetRow,
           "run": RunMeta, "experiment": Experiment}


def _type_name(schema: dict, defs: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s, defs) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    t = schema.get("type", "any")
    if t == "array":
        return f"list[{_type_name(schema.get('items', {}), defs)}]"
    return {"number": "float", "integer": "int", "string": "str", "boolean": "bool", "object": "dict",
            "null": "null"}.get(t, str(t))


def markdown(model) -> str:
    """The model's fields as a Markdown table: field, type, meaning."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        desc = (prop.get("description") or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(prop, defs).replace('|', 'or')} | {desc} |")
    return "\n".join(lines) + "\n"


def cmd_schema(args) -> int:
    model = SCHEMAS[args.record]
    if args.markdown:
        sys.stdout.write(markdown(model))
    else:
        sys.stdout.write(json.dumps(model.model_json_schema(), indent=2) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a record a run writes (or of the experiment)")
    p.add_argument("record", choices=list(SCHEMAS))
    p.add_argument("--markdown", action="store_true", help="a table of the fields instead of JSON Schema")
    p.set_defaults(handler=cmd_schema)
