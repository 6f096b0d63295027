"""`reflectopt schema summary|world-step|world-state|targets|run|experiment`: the JSON Schema of a record.

`--markdown` prints the record's fields as a table instead (the README's results section holds these
tables; a test keeps them equal); for the experiment, a table per section too (every field has a meaning).
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


def _table(schema: dict, defs: dict) -> list[str]:
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        desc = (prop.get("description") or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(prop, defs).replace('|', 'or')} | {desc} |")
    return lines


def _refs(schema) -> list[str]:
    """The $defs a schema names, in order of appearance."""
    out: list[str] = []
    if isinstance(schema, dict):
        if "$ref" in schema:
            out.append(schema["$ref"].rsplit("/", 1)[-1])
        for v in schema.values():
            out += _refs(v)
    elif isinstance(schema, list):
        for v in schema:
            out += _refs(v)
    return out


def markdown(model, nested: bool = False) -> str:
    """The model's fields as a Markdown table: field, type, meaning; `nested`: then one table per model its
    fields use (the experiment's sections: `Objective`, `Reflector`, ...), in order of first use."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    lines = _table(schema, defs)
    if nested:
        seen: list[str] = []
        todo = _refs(schema.get("properties", {}))
        while todo:
            name = todo.pop(0)
            if name in seen or name not in defs:
                continue
            seen.append(name)
            lines += ["", f"### `{name}`", "", *_table(defs[name], defs)]
            todo += _refs(defs[name].get("properties", {}))
    return "\n".join(lines) + "\n"


def cmd_schema(args) -> int:
    model = SCHEMAS[args.record]
    if args.markdown:
        sys.stdout.write(markdown(model, nested=model is Experiment))
    else:
        sys.stdout.write(json.dumps(model.model_json_schema(), indent=2) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a record a run writes (or of the experiment)")
    p.add_argument("record", choices=list(SCHEMAS))
    p.add_argument("--markdown", action="store_true", help="a table of the fields instead of JSON Schema")
    p.set_defaults(handler=cmd_schema)
