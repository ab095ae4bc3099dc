#!/usr/bin/env python3
"""The offline checks of the kubernetes/ tree, run by scripts/kubernetes (see there).

    kubernetes_check.py check [--no-checkov] [--keep DIR] [TARGET...]
    kubernetes_check.py self-test

A TARGET is a kustomization directory (rendered with `kubectl kustomize`) or a YAML file
taken as already rendered (the fixtures of kubernetes/crds/tests/). Without targets, `check`
takes kubernetes/ and every directory of kubernetes/overlays/.

Every rendered object is checked:
  * core objects against the Kubernetes OpenAPI schemas that kubernetes-validate ships, for
    Kubernetes $K8S_VERSION (default below), strict: a field the API does not define is an error;
  * custom resources against the openAPIV3Schema of their CRD in kubernetes/crds/
    (<group>_<version>_<kind>.json), the way the API server treats a structural schema: defaults
    applied first, a field the schema does not define (where it does not preserve unknown
    fields) is an error rather than silently pruned, `x-kubernetes-int-or-string`, `nullable`,
    list types `set`/`map` and the CEL rules of `x-kubernetes-validations` (cel-python; rules
    on `oldSelf` only apply to updates and are left out); their metadata against ObjectMeta;
  * a kind with no schema at all is an error;
  * what the API server refuses beyond the schemas: names, label keys and values, ConfigMap
    and Secret keys and sizes, and objects too large for `kubectl apply`'s
    last-applied-configuration annotation;
  * every `checkov.io/skip*` annotation must read `CHECK_ID=reason` with a reason;
  * checkov (`--framework kubernetes`) over the rendered objects, one file per object: any
    failed check is an error, skips are counted with their reasons.
"""

import argparse
import collections
import copy
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import jsonschema
import yaml
from packaging.version import Version
from referencing import Registry, Resource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBERNETES = os.path.join(ROOT, "kubernetes")
CRDS = os.path.join(KUBERNETES, "crds")
TESTS = os.path.join(CRDS, "tests")
DEFAULT_K8S_VERSION = "1.33.0"

# Kinds checkov has checks for: each such object must show up in checkov's results, so that a
# file checkov could not parse (it only logs a warning) does not pass unseen.
CHECKOV_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
SKIP_PREFIXES = ("checkov.io/skip", "bridgecrew.io/skip")
CHECK_ID = re.compile(r"^(CKV2?_K8S_\d+|BC_K8S_\d+)$")

try:
    import celpy
except ImportError:
    sys.exit("kubernetes_check.py: cel-python is missing; run it through scripts/kubernetes, whose "
             "install step adds it")


def rel(path):
    if os.path.isabs(path) and (path + os.sep).startswith(ROOT + os.sep):
        return os.path.relpath(path, ROOT)
    return path


def fmt_path(parts):
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(the object)"


class Problem:
    def __init__(self, where, path, message, hint=""):
        self.where, self.path, self.message, self.hint = where, path, message, hint

    def __str__(self):
        text = f"{self.where}: {self.path}: {self.message}" if self.path else f"{self.where}: {self.message}"
        return text + (f"\n      -> {self.hint}" if self.hint else "")


# ---------------------------------------------------------------------------------------------
# Core objects: kubernetes-validate's schemas.

class CoreSchemas:
    def __init__(self, version):
        import kubernetes_validate
        from kubernetes_validate import utils as kv
        self.kv = kv
        self.package_version = kubernetes_validate.version.__version__ \
            if hasattr(kubernetes_validate, "version") else "?"
        wanted = Version(kv.major_minor(version))
        known = [v for v in kv.all_versions() if Version(kv.major_minor(v)) <= wanted]
        if not known or Version(kv.major_minor(kv.latest_version())) < wanted:
            raise SystemExit(f"kubernetes-validate {self.package_version} has no schemas for "
                             f"Kubernetes {version}; pick K8S_VERSION from {kv.all_versions()[0]} "
                             f"to {kv.latest_version()}")
        self.version = version
        self.schema_version = known[-1]
        self.dir = f"kubernetes-json-schema/v{self.schema_version}-local-strict"
        self.defs = kv.schema_contents(f"{self.dir}/_definitions.json", version)
        self.cache = {}

    def validator(self, api_version, kind):
        key = (api_version, kind)
        if key not in self.cache:
            mangled = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = self.kv.schema_contents(f"{self.dir}/{kind.lower()}-{mangled}.json", self.version)
            except FileNotFoundError:
                self.cache[key] = None
            else:
                registry = Resource.from_contents(self.defs) @ (Resource.from_contents(schema) @ Registry())
                self.cache[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self.cache[key]

    def object_meta(self):
        if "meta" not in self.cache:
            schema = {"$ref": self.defs["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            registry = Resource.from_contents(self.defs) @ Registry()
            self.cache["meta"] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self.cache["meta"]


# ---------------------------------------------------------------------------------------------
# Custom resources: CRD schemas read the way the API server reads a structural schema.

PRUNE = "x-chaos-symphony-prune"
UNKNOWN = "kubectl apply refuses it; without strict field validation the API server drops it"
EMBEDDED = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {}}


def prepare(node, structural=True, root=False):
    """Turns an OpenAPI v3 CRD schema into a Draft 7 schema with a pruning keyword."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if node.get("x-kubernetes-int-or-string"):
        node["type"] = ["integer", "string"]
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if node.get("nullable"):
            types = types + ["null"]
        node["type"] = types[0] if len(types) == 1 else types
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(node.get(exclusive), bool):
            if node.pop(exclusive) and bound in node:
                node[exclusive] = node.pop(bound)
    if isinstance(node.get("properties"), dict):
        node["properties"] = {k: prepare(v, structural) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = prepare(node["additionalProperties"], structural)
    if isinstance(node.get("items"), dict):
        node["items"] = prepare(node["items"], structural)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [prepare(v, structural=False) for v in node[key]]
    if "not" in node:
        node["not"] = prepare(node["not"], structural=False)
    embedded = node.get("x-kubernetes-embedded-resource") or root
    if embedded:
        props = dict(node.get("properties") or {})
        for name, schema in EMBEDDED.items():
            props.setdefault(name, schema)
        props["metadata"] = {}  # checked against ObjectMeta on its own
        node["properties"] = props
    is_object = node.get("type") in ("object", ["object", "null"]) or "properties" in node
    if (structural and is_object and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node):
        node[PRUNE] = True
    return node


def apply_defaults(schema, value):
    """Fills in defaults as the API server does before it validates (in place)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in value and isinstance(sub, dict) and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            if name in props:
                apply_defaults(props[name], item)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(schema["additionalProperties"], item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


def _prune(validator, value, instance, schema):
    if not value or not isinstance(instance, dict):
        return
    known = sorted((schema.get("properties") or {}).keys())
    for key in instance:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(known) if len(known) <= 15 else ", ".join(known[:15]) + ", ..."
        yield jsonschema.ValidationError(
            f"unknown field '{key}' ({UNKNOWN}); {hint}known here: {listed or 'none'}",
            path=[key], validator="unknown-field")


def _list_type(validator, value, instance, schema):
    if not isinstance(instance, list):
        return
    if value == "set":
        seen = []
        for index, item in enumerate(instance):
            if item in seen:
                yield jsonschema.ValidationError(
                    f"duplicate entry {json.dumps(item)} in a list of type set", path=[index])
            seen.append(item)
    elif value == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen = {}
        for index, item in enumerate(instance):
            if not isinstance(item, dict):
                continue
            key = tuple(json.dumps(item.get(k)) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(
                    f"duplicate entry with {', '.join(f'{k}={item.get(k)!r}' for k in keys)} "
                    f"(also at [{seen[key]}]); the keys of a list of type map must be unique",
                    path=[index])
            seen[key] = index


class Cel:
    def __init__(self):
        self.env = celpy.Environment()
        self.programs = {}
        self.evaluated = 0
        self.transition = 0

    def check(self, validator, rules, instance, schema):
        for rule in rules:
            text = rule.get("rule", "")
            if re.search(r"\boldSelf\b", text):
                self.transition += 1
                continue
            self.evaluated += 1
            path = [p for p in re.split(r"[.\[\]']+", rule.get("fieldPath", "")) if p]
            message = rule.get("message") or f"failed rule: {text}"
            try:
                if text not in self.programs:
                    self.programs[text] = self.env.program(self.env.compile(text))
                result = self.programs[text].evaluate({"self": celpy.json_to_cel(instance)})
            except Exception as error:  # evaluation errors fail the rule, as on the API server
                result = error
            if isinstance(result, Exception):
                detail = result.args[0] if result.args else result
                if len(result.args) > 2 and isinstance(result.args[2], tuple) and result.args[2]:
                    detail = result.args[2][0]
                yield jsonschema.ValidationError(
                    f"{message} (rule `{text}` failed: {str(detail)[:160]})",
                    path=path, validator="x-kubernetes-validations")
            elif not bool(result):
                yield jsonschema.ValidationError(f"{message} (rule `{text}`)", path=path,
                                                 validator="x-kubernetes-validations")


def _format_checker():
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("int32")
    def int32(value):
        return not isinstance(value, int) or -2**31 <= value < 2**31

    @checker.checks("int64")
    def int64(value):
        return not isinstance(value, int) or -2**63 <= value < 2**63

    @checker.checks("date-time")
    def date_time(value):
        return not isinstance(value, str) or re.match(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", value) is not None

    return checker


class CrdSchemas:
    def __init__(self, core):
        self.core = core
        self.cel = Cel()
        self.cache = {}
        self.validator_class = jsonschema.validators.extend(jsonschema.Draft7Validator, {
            PRUNE: _prune,
            "x-kubernetes-list-type": _list_type,
            "x-kubernetes-validations": self.cel.check,
        })
        self.formats = _format_checker()

    @staticmethod
    def filename(api_version, kind):
        if "/" not in api_version:
            return None
        group, version = api_version.split("/", 1)
        return os.path.join(CRDS, f"{group}_{version}_{kind.lower()}.json")

    def get(self, api_version, kind):
        path = self.filename(api_version, kind)
        if path is None or not os.path.exists(path):
            return None
        if path not in self.cache:
            with open(path, encoding="utf-8") as f:
                schema = prepare(json.load(f), root=True)
            self.cache[path] = (schema, self.validator_class(schema, format_checker=self.formats))
        return self.cache[path]


# ---------------------------------------------------------------------------------------------
# Names, labels, skip annotations.

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
RBAC = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
ANNOTATION_LIMIT = 256 * 1024      # all annotations of an object, bytes
CONFIG_LIMIT = 1024 * 1024         # data and binaryData of a ConfigMap or Secret, bytes


def label_problems(where, labels):
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        path = f"{where}[{json.dumps(key)}]"
        prefix, _, short = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix))) \
                or len(short) > 63 or not LABEL_NAME.match(short):
            yield (path, f"'{key}' is not a valid label key",
                   "a label key is an optional DNS subdomain and '/', then at most 63 letters, "
                   "digits, '-', '_' or '.'")
        if isinstance(value, str) and value and (len(value) > 63 or not LABEL_NAME.match(value)):
            yield (path, f"label value '{value}' is not valid",
                   "at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric")


def check_api_rules(obj):
    """Yields (path, message, hint) for what the API server refuses beyond the schemas."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name")
    kind = obj.get("kind")
    if not name and not meta.get("generateName"):
        yield ("metadata.name", "the object has no name", "give it metadata.name")
    elif name and kind in RBAC:
        if not isinstance(name, str) or name in (".", "..") or "/" in name or "%" in name:
            yield ("metadata.name", f"'{name}' is not a valid path segment name", "drop '/' and '%'")
    elif name:
        if kind == "Service":
            rule, pattern, limit = "a DNS-1035 label", DNS1035_LABEL, 63
        elif kind == "Namespace":
            rule, pattern, limit = "a DNS-1123 label", DNS1123_LABEL, 63
        else:
            rule, pattern, limit = "a DNS-1123 subdomain", DNS1123_SUBDOMAIN, 253
        if not isinstance(name, str) or len(name) > limit or not pattern.match(name):
            yield ("metadata.name", f"'{name}' is not {rule} (at most {limit} characters)",
                   "use lower-case letters, digits and '-'"
                   + (", starting with a letter" if kind == "Service" else ""))
    yield from label_problems("metadata.labels", meta.get("labels"))
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    selector = spec.get("selector")
    if kind == "Service":
        yield from label_problems("spec.selector", selector)
    elif isinstance(selector, dict):
        yield from label_problems("spec.selector.matchLabels", selector.get("matchLabels"))
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    if isinstance(template.get("metadata"), dict):
        yield from label_problems("spec.template.metadata.labels", template["metadata"].get("labels"))
    if kind in ("ConfigMap", "Secret"):
        total = 0
        for field in ("data", "binaryData", "stringData"):
            for key, value in (obj.get(field) or {}).items() if isinstance(obj.get(field), dict) else ():
                if not CONFIG_KEY.match(str(key)) or len(str(key)) > 253:
                    yield (f"{field}[{json.dumps(key)}]", "is not a valid key",
                           "keys hold only letters, digits, '-', '_' and '.'")
                total += len(str(value).encode("utf-8"))
        if total > CONFIG_LIMIT:
            yield ("data", f"the {kind} holds {total} bytes, more than the {CONFIG_LIMIT} it may hold",
                   "split it")
    # `kubectl apply` without --server-side keeps the whole object in the annotation
    # kubectl.kubernetes.io/last-applied-configuration, and all annotations together may
    # hold at most 256 KiB.
    size = len(json.dumps(obj, separators=(",", ":")).encode("utf-8"))
    if size > ANNOTATION_LIMIT:
        yield ("metadata.annotations", f"the object is {size} bytes: `kubectl apply` would store it in "
               f"its last-applied-configuration annotation, over the {ANNOTATION_LIMIT}-byte limit "
               "of annotations", "split it, or document `kubectl apply --server-side`")


def check_skips(obj):
    """Yields (path, message, hint) for checkov skip annotations that do not give a reason."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, dict):
        return
    for key, value in annotations.items():
        if not any(p in key for p in SKIP_PREFIXES):
            continue
        path = f"metadata.annotations[{json.dumps(key)}]"
        text = str(value)
        check, sep, reason = text.partition("=")
        if not sep or not reason.strip():
            yield (path, f"checkov skip '{text}' has no reason",
                   f"write it as '{check.strip() or 'CKV_K8S_N'}=why the check does not apply here'")
        elif "=" in reason:
            yield (path, "the reason of a checkov skip may not hold '=' (checkov splits on it)",
                   "reword the reason without '='")
        if not CHECK_ID.match(check.strip()):
            yield (path, f"'{check.strip()}' is not a checkov Kubernetes check id",
                   "name a check such as CKV_K8S_43 (see `checkov --list --framework kubernetes`)")


# ---------------------------------------------------------------------------------------------
# Finding where an object came from, for the messages.

def source_index():
    index = collections.defaultdict(set)
    for base, dirs, files in os.walk(KUBERNETES):
        dirs[:] = [d for d in dirs if d != "crds"]
        for name in files:
            if not name.endswith((".yaml", ".yml")) or name.startswith("kustomization"):
                continue
            path = os.path.join(base, name)
            try:
                with open(path, encoding="utf-8") as f:
                    for doc in yaml.safe_load_all(f):
                        if isinstance(doc, dict) and "kind" in doc:
                            index[(doc["kind"], (doc.get("metadata") or {}).get("name"))].add(rel(path))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
    return index


def find_source(sources, obj):
    """The files under kubernetes/ that define this object, allowing for namePrefix/nameSuffix."""
    kind, name = obj.get("kind"), str((obj.get("metadata") or {}).get("name"))
    if (kind, name) in sources:
        return sorted(sources[(kind, name)])
    best = [k for k in sources if k[0] == kind and k[1] and str(k[1]) in name]
    if not best:
        return []
    longest = max(len(str(k[1])) for k in best)
    return sorted(p for k in best if len(str(k[1])) == longest for p in sources[k])


# ---------------------------------------------------------------------------------------------

class Target:
    def __init__(self, path, label):
        self.path, self.label = path, label
        self.objects = []          # (file written, object)
        self.problems = []
        self.kinds = collections.Counter()
        self.core_ok = self.core_total = 0
        self.custom_ok = self.custom_total = 0
        self.checkov = {"passed": 0, "failed": 0, "skipped": 0}
        self.skip_reasons = []
        self.where = {}            # file written -> how messages name its object
        self.rendered = False


def label_of(path):
    path = os.path.abspath(path)
    if path == KUBERNETES:
        return "kubernetes"
    if os.path.dirname(path) == os.path.join(KUBERNETES, "overlays"):
        return os.path.basename(path)
    return rel(path)


def default_targets():
    targets = [KUBERNETES]
    overlays = os.path.join(KUBERNETES, "overlays")
    if os.path.isdir(overlays):
        for name in sorted(os.listdir(overlays)):
            if os.path.isdir(os.path.join(overlays, name)):
                targets.append(os.path.join(overlays, name))
    return targets


def render(target, kubectl, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    if os.path.isdir(target.path):
        run = subprocess.run([kubectl, "kustomize", target.path], capture_output=True, text=True)
        if run.returncode != 0:
            target.problems.append(Problem(
                rel(target.path), "", "kubectl kustomize failed:\n        "
                + run.stderr.strip().replace("\n", "\n        "),
                "fix the kustomization (the message names the file and field)"))
            return
        text = run.stdout
    else:
        with open(target.path, encoding="utf-8") as f:
            text = f.read()
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        target.problems.append(Problem(rel(target.path), "", f"not YAML: {error}"))
        return
    target.rendered = True
    for number, obj in enumerate(docs, 1):
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            target.problems.append(Problem(f"{rel(target.path)} document {number}", "",
                                           "not a Kubernetes object (no apiVersion or kind)"))
            continue
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{obj['kind']}-{meta.get('name', 'unnamed')}".lower())
        file = os.path.join(out_dir, f"{number:03d}-{name[:180]}.yaml")
        with open(file, "w", encoding="utf-8") as f:
            yaml.safe_dump(obj, f, sort_keys=False, default_flow_style=False)
        target.objects.append((file, obj))
        target.kinds[obj["kind"]] += 1


def describe(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{meta.get('name')}" + (f" (namespace {ns})" if ns else "")


def hint_for(error, schema_name):
    kind = error.validator
    if kind == "unknown-field":
        return "remove the field, or fix its spelling or indentation"
    if kind == "additionalProperties":
        return "remove the field, or fix its spelling or indentation"
    if kind == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = {"integer": "an integer (unquoted)", "number": "a number (unquoted)",
                 "string": "a string (quote it)", "boolean": "true or false (unquoted)",
                 "object": "a mapping", "array": "a list"}
        return "write " + " or ".join(words.get(t, t) for t in types if t != "null") + " here"
    if kind == "required":
        return "add the missing field"
    if kind == "enum":
        return f"use one of {', '.join(map(str, error.validator_value))}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength",
                "maxLength", "minItems", "maxItems", "pattern", "format"):
        return f"change the value: {kind} is {error.validator_value} in {schema_name}"
    if kind == "x-kubernetes-validations":
        return f"satisfy the rule of {schema_name}"
    return f"see {schema_name}"


def unknown_fields(error):
    """For an additionalProperties error of a core schema: [(field, message)]."""
    known = sorted((error.schema.get("properties") or {}).keys()) if isinstance(error.schema, dict) else []
    out = []
    for key in error.instance if isinstance(error.instance, dict) else ():
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(known) if len(known) <= 15 else ", ".join(known[:15]) + ", ..."
        out.append((key, f"unknown field '{key}' ({UNKNOWN}); {hint}known here: {listed or 'none'}"))
    return out


def messages(error):
    """The message of a jsonschema error, with the causes of an anyOf/oneOf failure."""
    text = error.message
    if len(text) > 300:
        text = text[:300] + "..."
    if error.context:
        causes = sorted(error.context, key=lambda e: len(e.path))[:3]
        text += "; " + "; ".join(f"{fmt_path(list(e.absolute_path)[len(error.absolute_path):]) or '.'}: "
                                 f"{e.message[:160]}" for e in causes)
    return text


def validate_target(target, core, crds, sources):
    for file, obj in target.objects:
        where = describe(obj)
        origin = find_source(sources, obj)
        if not os.path.isdir(target.path):
            origin = [rel(target.path)]
        at = f"{where} [{', '.join(origin) if origin else 'source not found under kubernetes/'}]"
        target.where[os.path.abspath(file)] = at
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        for path, message, hint in list(check_api_rules(obj)) + list(check_skips(obj)):
            target.problems.append(Problem(at, path, message, hint))
        custom = crds.get(api_version, kind)
        if custom is not None:
            target.custom_total += 1
            schema, validator = custom
            schema_name = rel(crds.filename(api_version, kind)) + " (see kubernetes/crds/SOURCES.md)"
            value = copy.deepcopy(obj)
            apply_defaults(schema, value)
            errors = [([], e) for e in validator.iter_errors(value)]
            errors += [(["metadata"], e) for e in core.object_meta().iter_errors(value.get("metadata") or {})]
            for prefix, error in errors:
                target.problems.append(Problem(at, fmt_path(prefix + list(error.absolute_path)),
                                               messages(error), hint_for(error, schema_name)))
            if not errors:
                target.custom_ok += 1
            continue
        validator = core.validator(api_version, kind)
        if validator is None:
            if "." in api_version.split("/")[0] and not api_version.endswith(".k8s.io/" + api_version.split("/")[-1]):
                hint = ("add the schema of its CRD to kubernetes/crds/ (`scripts/kubernetes extract "
                        "CRD.yaml --kind " + kind + " --version " + api_version.split("/")[-1] + "`) "
                        "and list it in kubernetes/crds/SOURCES.md")
            else:
                hint = (f"Kubernetes {core.version} does not serve {api_version} {kind}; "
                        "use an apiVersion it serves (`kubectl explain` on a cluster, or the API reference)")
            target.problems.append(Problem(at, "", f"no schema for {api_version} {kind}", hint))
            continue
        target.core_total += 1
        errors = list(validator.iter_errors(obj))
        for error in errors:
            path = list(error.absolute_path)
            hint = hint_for(error, f"the Kubernetes {core.version} API ({kind} {api_version})")
            extra = unknown_fields(error) if error.validator == "additionalProperties" else []
            for key, message in extra:
                target.problems.append(Problem(at, fmt_path(path + [key]), message, hint))
            if not extra:
                target.problems.append(Problem(at, fmt_path(path), messages(error), hint))
        if not errors:
            target.core_ok += 1


def run_checkov(checkov, root, targets):
    """Runs checkov once over every target's rendered files; fills target.checkov."""
    cmd = [checkov, "--framework", "kubernetes", "-d", root, "-o", "json", "--skip-download"]
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="ERROR")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    try:
        report = json.loads(run.stdout) if run.stdout.strip() else {}
    except json.JSONDecodeError:
        raise SystemExit("checkov did not write a JSON report (exit %d):\n%s\n%s"
                         % (run.returncode, run.stdout[-2000:], run.stderr[-2000:]))
    reports = report if isinstance(report, list) else [report]
    by_file = {}
    for target in targets:
        for file, obj in target.objects:
            by_file[os.path.abspath(file)] = (target, obj)
    seen = set()
    failed = 0
    for rep in reports:
        results = rep.get("results") or {}
        for error in results.get("parsing_errors") or []:
            path = os.path.abspath(os.path.join(root, str(error).lstrip("/")))
            target, obj = by_file.get(path, (None, None))
            where = describe(obj) if obj else str(error)
            (target.problems if target else targets[0].problems).append(
                Problem(where, "", "checkov could not parse the rendered file"))
        for state, key in (("passed", "passed_checks"), ("failed", "failed_checks"),
                           ("skipped", "skipped_checks")):
            for result in results.get(key) or []:
                path = result.get("file_abs_path") or os.path.join(root, result.get("file_path", "").lstrip("/"))
                file = os.path.abspath(path)
                target, obj = by_file.get(file, (None, None))
                if target is None:
                    continue
                seen.add(file)
                target.checkov[state] += 1
                where = target.where.get(file, describe(obj))
                check_id = result.get("check_id")
                if state == "failed":
                    failed += 1
                    target.problems.append(Problem(
                        where, "", f"checkov {check_id} failed: {result.get('check_name')}",
                        "fix the manifest, or if the check does not apply here annotate the object "
                        f"with checkov.io/skipN: {check_id}=<the reason>"))
                elif state == "skipped":
                    reason = (result.get("check_result") or {}).get("suppress_comment")
                    target.skip_reasons.append((where, check_id, reason))
    for target in targets:
        for file, obj in target.objects:
            if obj.get("kind") in CHECKOV_WORKLOADS and os.path.abspath(file) not in seen:
                target.problems.append(Problem(
                    target.where.get(file, describe(obj)), "",
                    "checkov reported nothing for this object (it could not read it)",
                    "run `scripts/kubernetes check --keep DIR`, then `checkov -f` on its file in DIR"))
    if run.returncode not in (0, 1) or (run.returncode == 1 and not failed):
        targets[0].problems.append(Problem(
            "checkov", "", f"exited with {run.returncode} and {failed} failed check(s): "
            + (run.stderr.strip()[-1500:] or "no message"), "run checkov by hand to see what broke"))
    return run


def summary(target, with_checkov):
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(target.kinds.items()))
    line = (f"{target.label}: {sum(target.kinds.values())} objects ({kinds or 'none'}); "
            f"core {target.core_ok}/{target.core_total} valid; "
            f"custom {target.custom_ok}/{target.custom_total} valid")
    if with_checkov:
        c = target.checkov
        line += f"; checkov passed {c['passed']}, failed {c['failed']}, skipped {c['skipped']}"
    return line + ("; OK" if not target.problems else f"; {len(target.problems)} PROBLEM(S)")


def check(paths, kubectl, checkov, k8s_version, with_checkov=True, keep=None, quiet=False):
    core = CoreSchemas(k8s_version)
    crds = CrdSchemas(core)
    sources = source_index()
    work = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="chaos-symphony-k8s-")
    if keep:
        marker = os.path.join(work, ".rendered-by-scripts-kubernetes")
        if os.path.isdir(work) and os.listdir(work) and not os.path.exists(marker):
            raise SystemExit(f"--keep {keep}: the directory is not empty and was not made by an "
                             "earlier --keep; name a new or empty directory")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        open(marker, "w").close()
    targets = []
    labels = collections.Counter()
    started = time.monotonic()
    try:
        for path in paths:
            label = label_of(path)
            labels[label] += 1
            if labels[label] > 1:
                label += f"-{labels[label]}"
            target = Target(os.path.abspath(path), label)
            targets.append(target)
            if not os.path.exists(path):
                target.problems.append(Problem(rel(path), "", "does not exist"))
                continue
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "target"
            render(target, kubectl, os.path.join(work, f"{len(targets):02d}-{safe}"))
            validate_target(target, core, crds, sources)
        validated = time.monotonic()
        if with_checkov and any(t.objects for t in targets):
            run_checkov(checkov, work, [t for t in targets if t.objects])
        finished = time.monotonic()
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if not quiet:
        skips = collections.OrderedDict()
        for target in targets:
            for problem in target.problems:
                print(f"  {target.label}: {problem}")
            for where, check_id, reason in target.skip_reasons:
                entry = skips.setdefault((check_id, reason), (set(), []))
                entry[0].add(target.label)
                name = where.split(" [")[0].split(" (namespace")[0]
                if name not in entry[1]:
                    entry[1].append(name)
        for (check_id, reason), (labels, objects) in skips.items():
            print(f"  checkov {check_id} skipped on {len(objects)} object(s) in "
                  f"{', '.join(sorted(labels))}: {reason}\n      ({'; '.join(objects)})")
        print(f"Kubernetes {core.version} (kubernetes-validate schemas {core.schema_version}, strict); "
              f"CRD schemas from kubernetes/crds; CEL rule evaluations {crds.cel.evaluated}"
              + (f", update-only rules left out {crds.cel.transition}" if crds.cel.transition else ""))
        for target in targets:
            print(summary(target, with_checkov))
        print(f"render and schemas {validated - started:.1f}s"
              + (f", checkov {finished - validated:.1f}s" if with_checkov else ", checkov not run")
              + (f"; rendered files kept in {work}" if keep else ""))
    return targets


def self_test(kubectl, checkov, k8s_version):
    """Every fixture in kubernetes/crds/tests/ must end as its `# expect:` lines say."""
    cases = sorted(os.path.join(TESTS, n) for n in os.listdir(TESTS) if n.endswith(".yaml"))
    expectations = {}
    for case in cases:
        with open(case, encoding="utf-8") as f:
            expectations[case] = [line.split(":", 1)[1].strip() for line in f
                                  if line.startswith("# expect:")]
    targets = check(cases, kubectl, checkov, k8s_version, with_checkov=True, quiet=True)
    failures = 0
    for case, target in zip(cases, targets):
        expect = expectations[case]
        found = "\n".join(str(p) for p in target.problems)
        name = rel(case)
        if not expect:
            print(f"FAIL {name}: has no '# expect:' line")
            failures += 1
        elif expect == ["pass"]:
            if target.problems or not target.rendered:
                failures += 1
                print(f"FAIL {name}: should pass, but:\n" + "\n".join(f"    {p}" for p in target.problems))
            else:
                print(f"ok   {name}: passes ({summary(target, True)})")
        else:
            missing = [e for e in expect if e not in found]
            if not target.problems:
                failures += 1
                print(f"FAIL {name}: should fail, but passed")
            elif missing:
                failures += 1
                print(f"FAIL {name}: reported\n    {found}\n  but not: {missing}")
            else:
                print(f"ok   {name}: fails as expected ({len(target.problems)} problem(s) in all), with:")
                for problem in target.problems:
                    if any(e in str(problem) for e in expect):
                        print("       " + str(problem).replace("\n", "\n       "))
    print(f"{len(cases) - failures} passed, {failures} failed")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "self-test"])
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--checkov", default="checkov")
    parser.add_argument("--k8s-version", default=os.environ.get("K8S_VERSION", DEFAULT_K8S_VERSION))
    parser.add_argument("--no-checkov", action="store_true")
    parser.add_argument("--keep", help="keep the rendered files in this directory (new, empty, "
                        "or one an earlier --keep made; emptied first)")
    args = parser.parse_intermixed_args()
    if args.command == "self-test":
        if args.no_checkov or args.keep or args.targets:
            parser.error("self-test takes no targets, --keep or --no-checkov: it runs every fixture, "
                         "checkov included")
        sys.exit(self_test(args.kubectl, args.checkov, args.k8s_version))
    paths = args.targets or default_targets()
    targets = check(paths, args.kubectl, args.checkov, args.k8s_version, not args.no_checkov, args.keep)
    problems = sum(len(t.problems) for t in targets)
    if problems:
        print(f"scripts/kubernetes check: FAILED, {problems} problem(s) above")
        sys.exit(1)
    print("scripts/kubernetes check: OK")


if __name__ == "__main__":
    main()
