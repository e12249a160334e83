"""An in-memory Pinecone: the REST data plane of one dense index, and ``GET /indexes/{name}``.

Data plane: ``POST /vectors/upsert``, ``POST /query`` (topK, vector or id, filter with ``$eq``,
``$ne``, ``$in``, ``$nin``, ``$gt(e)``, ``$lt(e)``, ``$exists``, ``$and``, ``$or``, namespace,
includeMetadata, includeValues), ``POST /vectors/delete`` (ids, deleteAll, filter),
``POST /describe_index_stats``, ``GET /vectors/fetch``, ``GET|DELETE /namespaces[/{ns}]``.
Search is exact (cosine or dot product). Like the real service it answers 400 on a dimension
mismatch or a null metadata value, stores metadata numbers as floats, names the default
namespace ``__default__`` and answers 404 to ``deleteAll`` on a namespace that does not exist.
Namespaces are separate stores, as in the real service: a query, fetch or delete sees only the
namespace it names (so code that forgets a workspace's namespace finds nothing, and a test fails).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import unquote

import numpy as np

from tests.fakes.server import FakeServer, RecordedRequest, Reply

DEFAULT_NAMESPACE = "__default__"
_GRPC_CODES = {400: 3, 401: 16, 404: 5, 429: 8, 500: 13, 503: 14}
_MISSING = object()


class _BadRequest(Exception):
    pass


class _NotFound(_BadRequest):
    pass


class _Namespace:
    """Vectors of one namespace, with a cached matrix for search."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        self._matrix: tuple[list[str], np.ndarray] | None = None

    def put(self, vector_id: str, values: np.ndarray, metadata: dict[str, Any]) -> None:
        self.records[vector_id] = (values, metadata)
        self._matrix = None

    def remove(self, vector_ids: list[str]) -> None:
        for vector_id in vector_ids:
            self.records.pop(vector_id, None)
        self._matrix = None

    def matrix(self) -> tuple[list[str], np.ndarray]:
        if self._matrix is None:
            ids = list(self.records)
            rows = [self.records[i][0] for i in ids]
            self._matrix = (ids, np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32))
        return self._matrix


class FakePinecone(FakeServer):
    """See the module docstring. ``dimension`` and ``metric`` describe the one index it serves."""

    def __init__(
        self,
        *,
        dimension: int = 1024,
        metric: str = "cosine",
        index_name: str = "test-index",
        api_key: str | None = None,
        log_limit: int | None = 10_000,
    ) -> None:
        super().__init__(log_limit=log_limit)
        if metric not in ("cosine", "dotproduct"):
            raise ValueError("the fake supports the cosine and dotproduct metrics")
        self.dimension = dimension
        self.metric = metric
        self.index_name = index_name
        self.api_key = api_key  # when set, other Api-Key headers get a 401
        self._data_lock = threading.Lock()
        self.namespaces: dict[str, _Namespace] = {}

    # --- routing ---------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            return Reply(401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}, "status": 401})
        body = request.body if isinstance(request.body, dict) else {}
        routes = {
            ("POST", "/vectors/upsert"): lambda: self._upsert(body),
            ("POST", "/query"): lambda: self._query(body),
            ("POST", "/vectors/delete"): lambda: self._delete(body),
            ("POST", "/describe_index_stats"): lambda: self._stats(),
            ("GET", "/vectors/fetch"): lambda: self._fetch(request.query),
            ("GET", "/namespaces"): lambda: self._list_namespaces(),
        }
        route = routes.get((request.method, request.path))
        try:
            with self._data_lock:
                if route is not None:
                    return Reply(200, route())
                return self._other(request)
        except _NotFound as exc:
            return Reply(404, self.error_body(404, str(exc)))
        except _BadRequest as exc:
            return Reply(400, self.error_body(400, str(exc)))

    def _other(self, request: RecordedRequest) -> Reply:
        if request.method == "GET" and request.path.startswith("/indexes/"):
            return self._describe_index(unquote(request.path.removeprefix("/indexes/")))
        if request.path.startswith("/namespaces/"):
            name = _namespace_name(unquote(request.path.removeprefix("/namespaces/")))
            if name not in self.namespaces:
                return Reply(404, self.error_body(404, "Namespace not found"))
            if request.method == "DELETE":
                del self.namespaces[name]
                return Reply(202, {})
            return Reply(200, {"name": name, "recordCount": len(self.namespaces[name].records)})
        return Reply(404, self.error_body(404, f"no route for {request.method} {request.path}"))

    def error_body(self, status: int, message: str) -> Any:
        return {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []}

    # --- control plane ---------------------------------------------------------------------

    def _describe_index(self, name: str) -> Reply:
        if name != self.index_name:
            body = {"error": {"code": "NOT_FOUND", "message": f"Resource {name} not found"}, "status": 404}
            return Reply(404, body)
        return Reply(200, self.index_description())

    def index_description(self) -> dict[str, Any]:
        """The control plane's description of the index, with this fake as its host."""
        return {
            "name": self.index_name,
            "host": self.url,
            "dimension": self.dimension,
            "metric": self.metric,
            "vector_type": "dense",
            "status": {"ready": True, "state": "Ready"},
            "schema": {
                "fields": {"values": {"type": "dense_vector", "dimension": self.dimension, "metric": self.metric}}
            },
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
            "tags": None,
        }

    # --- data plane ------------------------------------------------------------------------

    def _upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _BadRequest("vectors must be a non-empty list")
        if len(vectors) > 1000:
            raise _BadRequest("Upsert request may contain at most 1000 vectors")
        prepared = [self._prepare(vector) for vector in vectors]
        namespace = self.namespaces.setdefault(_namespace_name(body.get("namespace")), _Namespace())
        for vector_id, values, metadata in prepared:
            namespace.put(vector_id, values, metadata)
        return {"upsertedCount": len(prepared)}

    def _prepare(self, vector: Any) -> tuple[str, np.ndarray, dict[str, Any]]:
        if not isinstance(vector, dict) or not isinstance(vector.get("id"), str) or not vector["id"]:
            raise _BadRequest("each vector needs a non-empty string id")
        values = self._values(vector.get("values"), "Vector")
        if not np.any(values):
            raise _BadRequest("Dense vectors must contain at least one non-zero value")
        return vector["id"], values, _stored_metadata(vector.get("metadata") or {})

    def _values(self, values: Any, what: str) -> np.ndarray:
        if not isinstance(values, list):
            raise _BadRequest(f"{what} values must be a list of numbers")
        if len(values) != self.dimension:
            raise _BadRequest(
                f"{what} dimension {len(values)} does not match the dimension of the index {self.dimension}"
            )
        return np.asarray(values, dtype=np.float32)

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10000:
            raise _BadRequest("topK must be between 1 and 10000")
        name = _namespace_name(body.get("namespace"))
        namespace = self.namespaces.get(name, _Namespace())
        query = self._query_vector(body, namespace)
        flt = body.get("filter") or {}
        ids, matrix = namespace.matrix()
        scores = self._scores(matrix, query) if ids else np.zeros(0)
        ranked = sorted(
            (i for i, vector_id in enumerate(ids) if _matches(namespace.records[vector_id][1], flt)),
            key=lambda i: -scores[i],
        )[:top_k]
        matches = [self._match(ids[i], float(scores[i]), namespace, body) for i in ranked]
        return {"matches": matches, "namespace": name, "usage": {"readUnits": 5}}

    def _query_vector(self, body: dict[str, Any], namespace: _Namespace) -> np.ndarray:
        if "vector" in body:
            return self._values(body["vector"], "Query vector")
        if isinstance(body.get("id"), str) and body["id"] in namespace.records:
            return namespace.records[body["id"]][0]
        raise _BadRequest("a query needs a vector or the id of a stored vector")

    def _scores(self, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self.metric == "dotproduct":
            return matrix @ query
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        return (matrix @ query) / np.where(norms == 0, 1.0, norms)

    @staticmethod
    def _match(vector_id: str, score: float, namespace: _Namespace, body: dict[str, Any]) -> dict[str, Any]:
        values, metadata = namespace.records[vector_id]
        match: dict[str, Any] = {"id": vector_id, "score": score, "values": []}
        if body.get("includeValues"):
            match["values"] = [float(x) for x in values]
        if body.get("includeMetadata") and metadata:
            match["metadata"] = metadata
        return match

    def _delete(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _namespace_name(body.get("namespace"))
        namespace = self.namespaces.get(name)
        if body.get("deleteAll"):
            if namespace is None:
                raise _NotFound("Namespace not found")
            del self.namespaces[name]
        elif isinstance(body.get("ids"), list):
            if namespace is not None:
                namespace.remove([str(i) for i in body["ids"]])
        elif isinstance(body.get("filter"), dict) and body["filter"]:
            if namespace is not None:
                namespace.remove([i for i, (_, meta) in namespace.records.items() if _matches(meta, body["filter"])])
        else:
            raise _BadRequest("delete needs ids, deleteAll or a filter")
        return {}

    def _stats(self) -> dict[str, Any]:
        namespaces = {name: {"vectorCount": len(ns.records)} for name, ns in self.namespaces.items() if ns.records}
        return {
            "namespaces": namespaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }

    def _fetch(self, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = query.get("ids") or []
        if not ids:
            raise _BadRequest("ids must not be empty")
        name = _namespace_name((query.get("namespace") or [""])[0])
        namespace = self.namespaces.get(name, _Namespace())
        found = {i: namespace.records[i] for i in ids if i in namespace.records}
        vectors = {
            i: {"id": i, "values": [float(x) for x in values], **({"metadata": meta} if meta else {})}
            for i, (values, meta) in found.items()
        }
        return {"vectors": vectors, "namespace": name, "usage": {"readUnits": 1}}

    def _list_namespaces(self) -> dict[str, Any]:
        return {"namespaces": [{"name": n, "recordCount": len(ns.records)} for n, ns in self.namespaces.items()]}

    # --- helpers for tests -----------------------------------------------------------------

    def stored(self, namespace: str = "") -> dict[str, tuple[list[float], dict[str, Any]]]:
        """A copy of one namespace's records: id -> (values, metadata)."""
        with self._data_lock:
            ns = self.namespaces.get(_namespace_name(namespace), _Namespace())
            return {i: ([float(x) for x in v], dict(m)) for i, (v, m) in ns.records.items()}


def _namespace_name(namespace: Any) -> str:
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def _stored_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise _BadRequest("metadata must be an object")
    stored: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, (bool, str)):
            stored[key] = value
        elif isinstance(value, (int, float)):
            stored[key] = float(value)  # Pinecone keeps every number as a float
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            stored[key] = list(value)
        else:
            raise _BadRequest(
                "Metadata value must be a string, number, boolean or list of strings, "
                f"got '{value!r}' for field '{key}'"
            )
    return stored


def _matches(metadata: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, condition in flt.items():
        if key == "$and":
            ok = all(_matches(metadata, sub) for sub in condition)
        elif key == "$or":
            ok = any(_matches(metadata, sub) for sub in condition)
        else:
            conditions = condition if isinstance(condition, dict) else {"$eq": condition}
            ok = all(_compare(metadata.get(key, _MISSING), op, arg) for op, arg in conditions.items())
        if not ok:
            return False
    return True


def _compare(value: Any, op: str, arg: Any) -> bool:
    present = value is not _MISSING
    values = value if isinstance(value, list) else [value]
    if op == "$exists":
        return present == bool(arg)
    if op == "$eq":
        return present and arg in values
    if op == "$ne":
        return not present or arg not in values
    if op == "$in":
        return present and any(v in arg for v in values)
    if op == "$nin":
        return not present or not any(v in arg for v in values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not present or isinstance(value, (str, list, bool)):
            return False
        return {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
    raise _BadRequest(f"unsupported filter operator {op}")
