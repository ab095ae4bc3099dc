#!/usr/bin/env python3
"""Extracts the OpenAPI v3 schema of custom resources from CustomResourceDefinition YAML.

    extract.py CRD.yaml [--kind KIND]... [--version VERSION] [--out DIR] [--keep-descriptions]

CRD.yaml may hold several documents (Istio ships all its CRDs in one file); `-` reads stdin.
For every CRD in it whose kind is named by --kind (every CRD when --kind is not given) and for
the served version --version (every served version when it is not given), the version's
`schema.openAPIV3Schema` is written to DIR/<group>_<version>_<kind>.json (kind in lower
case; DIR defaults to the directory of this script), as one line of JSON with sorted keys.

Descriptions are dropped unless --keep-descriptions is given: they are most of a CRD's size
and play no part in validation. Only the `description` keyword of schema nodes is dropped; a
field that happens to be called `description` stays.

Needs PyYAML: `scripts/kubernetes extract ARGS...` runs it with the tools venv's Python.
It prints the SHA-256 of the input and each file it wrote, for kubernetes/crds/SOURCES.md.
"""

import argparse
import hashlib
import json
import os
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("extract.py: PyYAML is missing; run it as `scripts/kubernetes extract ARGS...` "
             "(the tools venv has PyYAML)")

# Keywords whose value is one schema, a list of schemas, or a map of name to schema.
ONE = ("additionalProperties", "items", "not")
MANY = ("allOf", "anyOf", "oneOf")
MAP = ("properties", "patternProperties", "definitions")


def strip_descriptions(node):
    """Returns a copy of schema `node` without `description` keywords."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ONE:
            if isinstance(value, list):
                value = [strip_descriptions(v) for v in value]
            else:
                value = strip_descriptions(value)
        elif key in MANY:
            value = [strip_descriptions(v) for v in value]
        elif key in MAP:
            value = {name: strip_descriptions(v) for name, v in value.items()}
        out[key] = value
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write the openAPIV3Schema of CRDs as JSON files, one per kind and version.")
    parser.add_argument("crd", help="CRD YAML file (several documents allowed), - for stdin")
    parser.add_argument("--kind", action="append", default=[],
                        help="kind to extract (repeatable; default: every CRD in the file)")
    parser.add_argument("--version", help="served version to extract (default: every served one)")
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                        help="output directory (default: this script's directory)")
    parser.add_argument("--keep-descriptions", action="store_true",
                        help="keep the description keywords")
    args = parser.parse_args(argv)

    raw = sys.stdin.buffer.read() if args.crd == "-" else open(args.crd, "rb").read()
    print(f"{args.crd}: sha256 {hashlib.sha256(raw).hexdigest()}")
    docs = [d for d in yaml.safe_load_all(raw) if d]

    wanted = set(args.kind)
    seen = set()
    written = 0
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        if doc.get("apiVersion") != "apiextensions.k8s.io/v1":
            sys.exit(f"extract.py: {doc.get('metadata', {}).get('name')}: only "
                     f"apiextensions.k8s.io/v1 CRDs are supported, not {doc.get('apiVersion')}")
        spec = doc["spec"]
        kind = spec["names"]["kind"]
        if wanted and kind not in wanted:
            continue
        seen.add(kind)
        versions = [v for v in spec["versions"] if v.get("served")]
        if args.version:
            versions = [v for v in versions if v["name"] == args.version]
            if not versions:
                served = ", ".join(v["name"] for v in spec["versions"] if v.get("served"))
                sys.exit(f"extract.py: {kind} does not serve {args.version} (served: {served})")
        for version in versions:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                sys.exit(f"extract.py: {kind} {version['name']} has no openAPIV3Schema")
            if not args.keep_descriptions:
                schema = strip_descriptions(schema)
            name = f"{spec['group']}_{version['name']}_{kind.lower()}.json"
            path = os.path.join(args.out, name)
            text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            digest = hashlib.sha256((text + "\n").encode("utf-8")).hexdigest()
            print(f"  {spec['group']}/{version['name']} {kind} -> {path} (sha256 {digest})")
            written += 1
    missing = wanted - seen
    if missing:
        sys.exit(f"extract.py: no CRD of kind {', '.join(sorted(missing))} in {args.crd}")
    if not written:
        sys.exit(f"extract.py: nothing extracted from {args.crd}")


if __name__ == "__main__":
    main()
