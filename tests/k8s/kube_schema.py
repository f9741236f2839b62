#!/usr/bin/python3
"""Checks Kubernetes manifests against the object schema of the official Python client (Debian's
python3-kubernetes 22.6: the Kubernetes 1.22 API). Its model classes carry every field's JSON name
(attribute_map) and type (openapi_types), and their setters refuse None for required fields; this walks
a parsed manifest through them and reports every unknown field, wrong type and missing required field
with its path (`StatefulSet rankserve: spec.template.spec.containers[0].ports[0].containerPort: ...`).

Usage: kube_schema.py FILE.yaml...   (exit 1 listing the problems)
"""
import sys

import yaml
from kubernetes import client
from kubernetes.client import models

# The kinds the examples ship, with the apiVersion the API server serves them under.
KINDS = {
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolume"): "V1PersistentVolume",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("batch/v1", "Job"): "V1Job",
}

# resource.Quantity decodes from a JSON string or number; the client types it as a string.
QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                 ("V1PersistentVolumeSpec", "capacity")}
QUANTITY_FIELDS = {("V1EmptyDirVolumeSource", "size_limit")}
_required = {}


def required_fields(cls):
    """The attributes whose setter refuses None (the schema's required fields)."""
    if cls not in _required:
        probe = cls.__new__(cls)
        probe.local_vars_configuration = client.Configuration()
        names = set()
        for attr in cls.openapi_types:
            try:
                setattr(probe, attr, None)
            except ValueError:
                names.add(attr)
        _required[cls] = names
    return _required[cls]


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_quantity(value):
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def check(value, type_name, path, problems, owner=None):
    """Appends to `problems` every way `value` breaks `type_name` (an openapi_types entry)."""
    def bad(expected):
        problems.append(f"{path}: {value!r} is not {expected}")

    if value is None:
        return  # null is how a manifest leaves an optional field out
    if type_name == "str":
        if not isinstance(value, str):
            bad("a string (quote it)")
    elif type_name == "int":
        if not is_int(value):
            bad("an integer")
    elif type_name == "float":
        if not (is_int(value) or isinstance(value, float)):
            bad("a number")
    elif type_name == "bool":
        if not isinstance(value, bool):
            bad("a boolean")
    elif type_name == "datetime":
        if not isinstance(value, str):
            bad("a date-time string")
    elif type_name == "object":
        # IntOrString (ports, maxSurge) and free-form fields.
        if not (isinstance(value, (str, dict, list)) or is_int(value)):
            bad("a string or an integer")
    elif type_name.startswith("list[") and type_name.endswith("]"):
        if not isinstance(value, list):
            bad("a list")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]", problems)
    elif type_name.startswith("dict(str, ") and type_name.endswith(")"):
        if not isinstance(value, dict):
            bad("a map")
            return
        inner = type_name[len("dict(str, "):-1]
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
            if owner in QUANTITY_MAPS:
                if not is_quantity(item):
                    problems.append(f"{path}.{key}: {item!r} is not a quantity")
            else:
                check(item, inner, f"{path}.{key}", problems)
    else:
        cls = getattr(models, type_name, None)
        if cls is None:
            problems.append(f"{path}: the schema names an unknown type {type_name}")
            return
        if not isinstance(value, dict):
            bad(f"a map ({type_name})")
            return
        by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        for key, item in value.items():
            attr = by_json.get(key)
            if attr is None:
                problems.append(f"{path}.{key}: no such field in {type_name} (fields: {', '.join(sorted(by_json))})")
            elif (type_name, attr) in QUANTITY_FIELDS:
                if not is_quantity(item):
                    problems.append(f"{path}.{key}: {item!r} is not a quantity")
            else:
                check(item, cls.openapi_types[attr], f"{path}.{key}" if path else key, problems, (type_name, attr))
        for attr in sorted(required_fields(cls)):
            if value.get(cls.attribute_map[attr]) is None:
                problems.append(f"{path + '.' if path else ''}{cls.attribute_map[attr]}: required in {type_name}, missing")


def validate(obj):
    """Returns the problems of one manifest (a parsed YAML document), each prefixed with `<kind> <name>:`."""
    if not isinstance(obj, dict):
        return [f"a manifest is a map, not {type(obj).__name__}"]
    kind, api = obj.get("kind"), obj.get("apiVersion")
    name = (obj.get("metadata") or {}).get("name", "?")
    type_name = KINDS.get((api, kind))
    if type_name is None:
        return [f"{kind} {name}: apiVersion {api} kind {kind} is not one of {sorted(KINDS)}"]
    problems = []
    check(obj, type_name, "", problems)
    return [f"{kind} {name}: {p}" for p in problems]


def main(paths):
    problems = []
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    problems += [f"{path}: {p}" for p in validate(doc)]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
