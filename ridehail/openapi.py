"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they declare
(see `ridehail.kernel.validation`), assembled with apispec."""

from __future__ import annotations

import re
from typing import Any, Literal

from apispec import APISpec
from flask import Flask
from pydantic import BaseModel

from . import __version__

_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")
_PARAM_CONVERTER = re.compile(r"<(?:([a-z_]+):)?([a-zA-Z_]+)>")
# `<id:...>` path parameters (ridehail/kernel/routing.py): a 64-bit id in decimal.
ID_SCHEMA = {"type": "string", "pattern": "^[0-9]{1,19}$"}


def _schema_ref(
    spec: APISpec, model: type[BaseModel], mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    name = model.__name__
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for def_name, def_schema in schema.pop("$defs", {}).items():
        if def_name not in spec.components.schemas:
            spec.components.schema(def_name, def_schema)
    if name not in spec.components.schemas:
        spec.components.schema(name, schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["type", "title", "status"],
    }


def build_openapi(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="ridehail",
        version=__version__,
        openapi_version="3.1.0",
        info={"description": "Ride-hailing matching backend: riders, drivers, trips, dispatch."},
    )
    spec.components.schema("Problem", _problem_schema())
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions[rule.endpoint]
        meta: dict[str, Any] = getattr(view, "_openapi", None) or {"responses": {}}
        path = _PARAM.sub(r"{\1}", rule.rule)
        params = [
            {"name": n, "in": "path", "required": True,
             "schema": ID_SCHEMA if converter == "id" else {"type": "string"}}
            for converter, n in _PARAM_CONVERTER.findall(rule.rule)
        ]
        query_model = meta.get("query")
        if query_model is not None:
            qs = query_model.model_json_schema()
            required = set(qs.get("required", []))
            for name, prop in qs.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in required,
                               "schema": prop})
        operations: dict[str, Any] = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "summary": meta.get("summary", rule.endpoint),
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "tags": meta.get("tags") or [rule.endpoint.split(".")[0]],
                "responses": {},
            }
            if params:
                op["parameters"] = params
            if meta.get("auth"):
                op["security"] = [{"bearer": []}]
            body_model = meta.get("body")
            if body_model is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {
                        "schema": _schema_ref(spec, body_model, "validation")}},
                }
            for status, resp in (meta.get("responses") or {200: None}).items():
                entry: dict[str, Any] = {"description": str(status)}
                if isinstance(resp, type) and issubclass(resp, BaseModel):
                    entry["content"] = {"application/json": {
                        "schema": _schema_ref(spec, resp, "serialization")}}
                else:
                    if isinstance(resp, str):
                        entry["description"] = resp
                    if int(status) >= 400:
                        # An error a route names (409, 503, ...) is a problem like any other:
                        # without this its body would be declared as nothing at all.
                        entry["content"] = {"application/problem+json": {"schema": problem_ref}}
                op["responses"][str(status)] = entry
            if "4XX" not in op["responses"]:
                op["responses"]["4XX"] = {
                    "description": "problem",
                    "content": {"application/problem+json": {"schema": problem_ref}},
                }
            operations[method.lower()] = op
        if operations:
            spec.path(path=path, operations=operations)
    return spec.to_dict()
