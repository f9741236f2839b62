#!/usr/bin/python3
"""`helm template` for the charts in examples/kubernetes/, without Helm (none is packaged for Debian 12).

The charts keep to a subset of Helm's template language on purpose, and this renderer accepts that subset only:
  {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.Name }}  {{ .Chart.Version }}
  ... | quote        ... | toJson        {{ if .Values.x }} ... {{ else }} ... {{ end }}        {{/* comment */}}
with Go's whitespace trimming ({{- and -}}). Anything else, and any value the chart does not define, is an error
naming the file and line, so a template that renders here renders the same under Helm 3 (which prints an
undefined value as an empty string; here it fails instead).

Usage: helm_template.py CHART [--name R] [--namespace NS] [-f VALUES.yaml]... [--set a.b=v]... [--set-json a.b=JSON]...
prints the manifests as `helm template` does (`---` and `# Source: <chart>/templates/<file>` before each).
"""
import argparse
import copy
import json
import os
import re
import sys

import yaml

ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
PATH = r"\.(?:Values(?:\.[A-Za-z_][A-Za-z0-9_]*)+|Release\.(?:Name|Namespace)|Chart\.(?:Name|Version|AppVersion))"
OUTPUT = re.compile(rf"^({PATH})(?:\s*\|\s*(quote|toJson))?$")
IF = re.compile(rf"^if\s+({PATH})$")


class TemplateError(Exception):
    pass


def merge(base, overlay):
    """Helm's coalescing: maps merge key by key, anything else (lists included) is replaced."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def set_path(values, dotted, value):
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise TemplateError(f"--set {dotted}: {key} is not a map")
    node[keys[-1]] = value


def scalar(text):
    """--set's typing (Helm's strvals): integers, true/false and null are typed, the rest are strings."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text


def lookup(scope, path, where):
    node = scope
    for key in path.lstrip(".").split("."):
        if not isinstance(node, dict) or key not in node:
            raise TemplateError(f"{where}: {path} is not defined (values.yaml must define every value a template uses)")
        node = node[key]
    return node


def printed(value, where, path):
    """What Go's text/template prints for a value Helm read from YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # Helm reads values.yaml numbers as float64, which print as 1e+06 from a million on.
        if abs(value) >= 1_000_000:
            raise TemplateError(f"{where}: {path}={value} would print as a float under Helm (quote it in values.yaml)")
        return str(value)
    if isinstance(value, str):
        return value
    raise TemplateError(f"{where}: {path} is a {type(value).__name__}; pipe it to toJson")


def truthy(value):
    return value not in (None, False, 0, "") and value != [] and value != {}


def render_text(text, scope, source):
    """Renders one template; `source` names it in errors."""
    pieces = []  # literal text and actions, in order, after whitespace trimming
    pos = 0
    for m in ACTION.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            literal = literal.rstrip(" \t\r\n")
        if pieces and pieces[-1][0] == "trim-next":
            pieces.pop()
            literal = literal.lstrip(" \t\r\n")
        line = text.count("\n", 0, m.start()) + 1
        pieces.append(("text", literal, line))
        pieces.append(("action", m.group(2).strip(), line))
        if m.group(3):
            pieces.append(("trim-next", "", line))
        pos = m.end()
    tail = text[pos:]
    if pieces and pieces[-1][0] == "trim-next":
        pieces.pop()
        tail = tail.lstrip(" \t\r\n")
    pieces.append(("text", tail, text.count("\n") + 1))

    out = []
    stack = []  # per open if: [condition, in_else]
    for kind, body, line in pieces:
        where = f"{source}:{line}"
        emitting = all(cond != in_else for cond, in_else in stack)
        if kind == "text":
            if emitting:
                out.append(body)
            continue
        if body.startswith("/*") and body.endswith("*/"):
            continue
        if m := IF.match(body):
            stack.append([truthy(lookup(scope, m.group(1), where)), False])
        elif body == "else":
            if not stack or stack[-1][1]:
                raise TemplateError(f"{where}: else without if")
            stack[-1][1] = True
        elif body == "end":
            if not stack:
                raise TemplateError(f"{where}: end without if")
            stack.pop()
        elif m := OUTPUT.match(body):
            value = lookup(scope, m.group(1), where)
            if not emitting:
                continue
            if m.group(2) == "toJson":
                out.append(json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False))
            elif m.group(2) == "quote":
                out.append(json.dumps(printed(value, where, m.group(1)), ensure_ascii=False))
            else:
                out.append(printed(value, where, m.group(1)))
        else:
            raise TemplateError(f"{where}: '{{{{ {body} }}}}' is outside the subset these charts keep to "
                                "(tests/k8s/helm_template.py lists it)")
    if stack:
        raise TemplateError(f"{source}: {len(stack)} if without end")
    return "".join(out)


def chart_values(chart, value_files=(), sets=(), set_jsons=()):
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in value_files:
        with open(path) as f:
            merge(values, yaml.safe_load(f) or {})
    for item in sets:
        key, _, text = item.partition("=")
        set_path(values, key, scalar(text))
    for item in set_jsons:
        key, _, text = item.partition("=")
        set_path(values, key, json.loads(text))
    return values


def render_chart(chart, name, namespace="default", value_files=(), sets=(), set_jsons=()):
    """Returns [(source, text)] for each template of CHART, as `helm template` orders them (by file name)."""
    with open(os.path.join(chart, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    scope = {
        "Values": chart_values(chart, value_files, sets, set_jsons),
        "Release": {"Name": name, "Namespace": namespace},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion", "")},
    }
    rendered = []
    templates = os.path.join(chart, "templates")
    for file in sorted(os.listdir(templates)):
        if not file.endswith((".yaml", ".yml")):
            continue
        source = f"{meta['name']}/templates/{file}"
        with open(os.path.join(templates, file)) as f:
            rendered.append((source, render_text(f.read(), scope, source)))
    return rendered


def render_objects(chart, name, namespace="default", value_files=(), sets=(), set_jsons=()):
    """The rendered manifests parsed: [(source, object)] (empty documents dropped, as Helm does)."""
    objects = []
    for source, text in render_chart(chart, name, namespace, value_files, sets, set_jsons):
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise TemplateError(f"{source}: the rendered text is not YAML: {e}") from e
        objects += [(source, doc) for doc in docs if doc is not None]
    return objects


def main():
    parser = argparse.ArgumentParser(description="helm template, for the charts of examples/kubernetes/")
    parser.add_argument("chart")
    parser.add_argument("--name", default="rankserve")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--set-json", action="append", default=[])
    a = parser.parse_args()
    try:
        for source, text in render_chart(a.chart, a.name, a.namespace, a.values, a.set, a.set_json):
            print(f"---\n# Source: {source}\n{text.strip()}")
    except (TemplateError, OSError, yaml.YAMLError) as e:
        print(f"helm_template: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
