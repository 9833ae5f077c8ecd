"""Read-path performance patches applied to FerretDB v1.24.2's source before ``go build``.

Why (profiled through FerretDB's ``/debug/pprof`` while draining 200,000 usage documents, ~1.6 kB of
JSONB each): the stock server spends ~220-280 µs of CPU per document it returns, PostgreSQL ~13 µs.
Of the server's CPU, turning the stored JSONB text back into a document (``sjson.Unmarshal``) is over
half: ``encoding/json`` runs with a fresh ``json.Decoder`` (buffer copy + a second scan) for the whole
document, then again for its ``$s`` schema, then once more per field value. Resource tracking
(``resource.Track``: a ``pprof`` profile entry with a captured stack for every iterator, several per
document) is ~7 %. Garbage collection is ~18-25 % (tuned with ``GOGC`` at start, not here).

The patches below keep every behaviour except the wording of errors about malformed stored JSON
(FerretDB's own sjson tests fail only on those messages):

- ``resource.Track``/``Untrack`` are no-ops unless FerretDB is built with its ``ferretdb_debug`` tag
  (they only feed a leak-detection pprof profile, and would panic the server in a finalizer);
- scalar values and the top-level object are decoded with ``json.Unmarshal`` (one validating scan,
  no decoder buffer; trailing data is still an error);
- a document's ``$s`` schema is decoded once per distinct schema text (documents of one collection
  share it) and cached, bounded; cached schemas are only read.

FerretDB CPU seconds to drain the same 200,000 documents (medians, busy 2-core machine): stock with
GOGC=100 (the former setting) 52-56 s, stock with GOGC=400 ~39 s, patched with GOGC=400 17-22 s.
``AFLUENTE_FERRETDB_PATCHES=0`` builds the stock server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services import proc

PATCH_LEVEL = "perf1"  # part of the binary name: bump it whenever PATCHES change


@dataclass(frozen=True)
class Patch:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``path`` (relative to the source)."""

    path: str
    old: str
    new: str


def _scalar_unmarshal(path: str, go_type: str, disallow_unknown: bool) -> Patch:
    """``json.NewDecoder`` + ``checkConsumed`` → ``json.Unmarshal`` in a scalar type's UnmarshalJSON."""
    disallow = "\tdec.DisallowUnknownFields()\n" if disallow_unknown else ""
    old = (
        "\tr := bytes.NewReader(data)\n"
        "\tdec := json.NewDecoder(r)\n"
        f"{disallow}\n"
        f"\tvar o {go_type}\n"
        "\tif err := dec.Decode(&o); err != nil {\n"
        "\t\treturn lazyerrors.Error(err)\n"
        "\t}\n\n"
        "\tif err := checkConsumed(dec, r); err != nil {\n"
        "\t\treturn lazyerrors.Error(err)\n"
        "\t}\n"
    )
    new = (
        f"\tvar o {go_type}\n"
        "\tif err := json.Unmarshal(data, &o); err != nil {\n"
        "\t\treturn lazyerrors.Error(err)\n"
        "\t}\n"
    )
    return Patch(f"internal/handler/sjson/{path}", old, new)


_SJSON_UNMARSHAL_OLD = """\tvar v map[string]json.RawMessage
\tr := bytes.NewReader(data)
\tdec := json.NewDecoder(r)

\terr := dec.Decode(&v)
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err = checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\t// decode schema from the $s field of the document
\tjsch, ok := v["$s"]
\tif !ok {
\t\treturn nil, lazyerrors.Errorf("schema is not set")
\t}

\tvar sch schema
\tr = bytes.NewReader(jsch)
\tdec = json.NewDecoder(r)
\tdec.DisallowUnknownFields()

\tif err := dec.Decode(&sch); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}
"""

_SJSON_UNMARSHAL_NEW = """\tvar v map[string]json.RawMessage

\terr := json.Unmarshal(data, &v)
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\t// decode schema from the $s field of the document
\tjsch, ok := v["$s"]
\tif !ok {
\t\treturn nil, lazyerrors.Errorf("schema is not set")
\t}

\tsch, err := cachedSchema(jsch)
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}
"""

_SCHEMA_CACHE = """
// schemaCache holds decoded top-level schemas by their JSON text (afluente patch): the documents of
// a collection usually share one, so it is decoded once instead of once per document.
// Cached schemas are shared between goroutines and must not be modified.
var schemaCache = struct {
\tsync.Mutex
\tm map[string]*schema
}{m: make(map[string]*schema)}

// schemaCacheSize bounds schemaCache; it is emptied when full.
const schemaCacheSize = 1024

// cachedSchema returns the decoded schema for the given `$s` JSON text.
func cachedSchema(jsch []byte) (*schema, error) {
\tschemaCache.Lock()
\tsch := schemaCache.m[string(jsch)]
\tschemaCache.Unlock()

\tif sch != nil {
\t\treturn sch, nil
\t}

\tsch = new(schema)
\tr := bytes.NewReader(jsch)
\tdec := json.NewDecoder(r)
\tdec.DisallowUnknownFields()

\tif err := dec.Decode(sch); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tschemaCache.Lock()
\tif len(schemaCache.m) >= schemaCacheSize {
\t\tclear(schemaCache.m)
\t}
\tschemaCache.m[string(jsch)] = sch
\tschemaCache.Unlock()

\treturn sch, nil
}

// unmarshalSingleValue decodes the given sjson-encoded data element by the given schema."""

PATCHES: tuple[Patch, ...] = (
    Patch(
        "internal/util/resource/resource.go",
        "func Track(obj any, token *Token) {\n\tcheckArgs(obj, token)\n",
        "func Track(obj any, token *Token) {\n\tcheckArgs(obj, token)\n\n"
        "\tif !debugbuild.Enabled { // afluente patch: tracking costs a stack capture per iterator\n"
        "\t\treturn\n\t}\n",
    ),
    Patch(
        "internal/util/resource/resource.go",
        "func Untrack(obj any, token *Token) {\n\tcheckArgs(obj, token)\n",
        "func Untrack(obj any, token *Token) {\n\tcheckArgs(obj, token)\n\n"
        "\tif !debugbuild.Enabled { // afluente patch: see Track\n\t\treturn\n\t}\n",
    ),
    _scalar_unmarshal("string.go", "string", disallow_unknown=False),
    _scalar_unmarshal("int32.go", "int32", disallow_unknown=False),
    _scalar_unmarshal("int64.go", "int64", disallow_unknown=True),
    _scalar_unmarshal("bool.go", "bool", disallow_unknown=False),
    _scalar_unmarshal("datetime.go", "int64", disallow_unknown=True),
    _scalar_unmarshal("object_id.go", "string", disallow_unknown=True),
    Patch("internal/handler/sjson/sjson.go", _SJSON_UNMARSHAL_OLD, _SJSON_UNMARSHAL_NEW),
    Patch("internal/handler/sjson/sjson.go", '\t"io"\n\t"time"\n', '\t"io"\n\t"sync"\n\t"time"\n'),
    Patch(
        "internal/handler/sjson/sjson.go",
        "\n// unmarshalSingleValue decodes the given sjson-encoded data element by the given schema.",
        _SCHEMA_CACHE,
    ),
)


def apply_patches(src: Path, patches: tuple[Patch, ...] = PATCHES) -> None:
    """Apply ``patches`` to the FerretDB source tree ``src``; fail loudly if one does not match exactly."""
    for patch in patches:
        path = src / patch.path
        text = path.read_text()
        count = text.count(patch.old)
        if count != 1:
            raise proc.SetupError(
                f"FerretDB patch for {patch.path} matches {count} times (expected once): "
                "was FERRETDB_VERSION changed without updating services/ferretdb_patches.py?"
            )
        path.write_text(text.replace(patch.old, patch.new))
