"""Model files wherever they live: a local path, ``file://``, or any Beam filesystem (``gs://``, ``s3://``).

fastText and Hugging Face open only local files, so a model on an object store is copied, once per
worker process, into a private temporary directory and opened from there. The copy is keyed by the
URI and the size and modification time of every file, so a model retrained under the same URI is a
new copy, while the many stages and bundles of one process share one. Files are copied as stored
(no decompression by name), and nothing is fetched from the network other than the URI given.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from urllib.parse import unquote, urlparse

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_CACHE: dict[tuple, str] = {}
_LOCK = threading.Lock()
_ROOT: list[str] = []  # the process's copy directory, made on first use
_EXTRAS = {"gs": "gcp", "s3": "aws", "azfs": "azure"}


class ModelNotFound(FileNotFoundError):
    """The URI names no model file or directory (or its filesystem cannot be reached)."""


def local_path(uri: str) -> str | None:
    """The local path a URI names (plain path or ``file://``), or None for a remote filesystem."""
    scheme = FileSystems.get_scheme(uri)
    if scheme is None:
        return uri
    if scheme == "file":  # Beam has no filesystem for file://; it is a local path
        return unquote(urlparse(uri).path)
    return None


def _filesystem_error(uri: str, exc: Exception) -> ModelNotFound:
    scheme = FileSystems.get_scheme(uri)
    extra = _EXTRAS.get(scheme or "")
    if "Unable to get filesystem" in str(exc):
        hint = f" (pip install 'ouroboros-curate[{extra}]')" if extra else ""
        return ModelNotFound(f"{uri}: no Beam filesystem for {scheme}:// is installed{hint}")
    return ModelNotFound(f"{uri}: cannot be read: {exc}")


def _match(pattern: str) -> list:
    try:
        return list(FileSystems.match([pattern])[0].metadata_list)
    except (OSError, ValueError) as exc:  # BeamIOError (an OSError): a missing file on some stores
        if "Unable to get filesystem" in str(exc):
            raise _filesystem_error(pattern, exc) from None
        return []


def remote_files(uri: str) -> dict[str, tuple[int, float]]:
    """``{relative path: (size, mtime)}`` of the file ``uri`` names ("" as its key) or of every
    file under the directory it names; empty when there is nothing there."""
    uri = uri.rstrip("/")
    exact = [m for m in _match(uri) if m.path.rstrip("/") == uri]
    if exact:
        return {"": (exact[0].size_in_bytes, exact[0].last_updated_in_seconds)}
    prefix = uri + "/"
    return {m.path[len(prefix):]: (m.size_in_bytes, m.last_updated_in_seconds)
            for m in _match(prefix + "**") if m.path.startswith(prefix) and not m.path.endswith("/")}


def _copy_root() -> str:
    if not _ROOT:
        root = tempfile.mkdtemp(prefix="ouroboros-models-")
        atexit.register(shutil.rmtree, root, True)
        _ROOT.append(root)
    return _ROOT[0]


def _copy(src: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    partial = dest + ".partial"
    with FileSystems.open(src, compression_type=CompressionTypes.UNCOMPRESSED) as r, \
            open(partial, "wb") as w:
        shutil.copyfileobj(r, w, 1 << 20)
    os.replace(partial, dest)


def _missing(uri: str, want_dir: bool) -> str:
    return f"no such {'directory' if want_dir else 'file'}: {uri}"


def _wrong_kind(uri: str, want_dir: bool) -> str:
    return f"{uri} is a file, not a model directory" if want_dir else \
        f"{uri} is a directory, not a model file"


def _fetch(uri: str, want_dir: bool) -> str:
    local = local_path(uri)
    if local is not None:
        if not os.path.exists(local):
            raise ModelNotFound(_missing(uri, want_dir))
        if want_dir != os.path.isdir(local):
            raise ModelNotFound(_wrong_kind(uri, want_dir))
        return local
    files = remote_files(uri)
    if not files:
        raise ModelNotFound(_missing(uri, want_dir))
    if want_dir == ("" in files):
        raise ModelNotFound(_wrong_kind(uri, want_dir))
    uri = uri.rstrip("/")
    key = (uri, tuple(sorted(files.items())))
    with _LOCK:
        if key not in _CACHE:
            name = uri.rsplit("/", 1)[-1] or "model"
            dest = os.path.join(_copy_root(), hashlib.sha256(repr(key).encode()).hexdigest()[:16],
                                name)
            for rel in files:
                _copy(f"{uri}/{rel}" if rel else uri, os.path.join(dest, rel) if rel else dest)
            _CACHE[key] = dest
        return _CACHE[key]


def fetch_file(uri: str) -> str:
    """A local path to the model file ``uri`` names (copied once per process if it is remote)."""
    return _fetch(uri, want_dir=False)


def fetch_dir(uri: str) -> str:
    """A local path to the model directory ``uri`` names (copied once per process if remote)."""
    return _fetch(uri, want_dir=True)
