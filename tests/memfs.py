"""An in-memory Beam filesystem (``mem://bucket/key``) standing in for an object store in tests.

Beam's Python SDK ships no in-memory filesystem; this one behaves as GCS and S3 do for what the
pipeline uses: no directories (keys with a common prefix), whole objects, listing by prefix, no
atomic rename. Beam finds it by its scheme once this module is imported (FileSystem is a plugin).
"""

from __future__ import annotations

import io
import time

from apache_beam.io.filesystem import BeamIOError, CompressionTypes, FileMetadata, FileSystem

OBJECTS: dict[str, tuple[bytes, float]] = {}


class _Upload(io.BytesIO):
    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            OBJECTS[self._path] = (self.getvalue(), time.time())
        super().close()


class InMemoryFileSystem(FileSystem):
    @classmethod
    def scheme(cls) -> str:
        return "mem"

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path: str) -> None:  # object stores have no directories
        return None

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str):
        for path, (data, mtime) in sorted(OBJECTS.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), mtime)

    def create(self, path, mime_type="application/octet-stream",
               compression_type=CompressionTypes.AUTO):
        return _Upload(path)

    def open(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
        if path not in OBJECTS:
            raise BeamIOError(f"no such object: {path}", {path: FileNotFoundError(path)})
        return io.BytesIO(OBJECTS[path][0])

    def copy(self, source_file_names, destination_file_names) -> None:
        for src, dest in zip(source_file_names, destination_file_names):
            OBJECTS[dest] = (OBJECTS[src][0], time.time())

    def rename(self, source_file_names, destination_file_names) -> None:
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path: str) -> bool:
        return path in OBJECTS

    def size(self, path: str) -> int:
        return len(OBJECTS[path][0])

    def last_updated(self, path: str) -> float:
        return OBJECTS[path][1]

    def checksum(self, path: str) -> str:
        return str(hash(OBJECTS[path][0]))

    def metadata(self, path: str) -> FileMetadata:
        data, mtime = OBJECTS[path]
        return FileMetadata(path, len(data), mtime)

    def delete(self, paths) -> None:
        for path in paths:
            for key in [k for k in OBJECTS if k == path or k.startswith(path.rstrip("/") + "/")]:
                del OBJECTS[key]


def upload(local_path, uri: str) -> None:
    """Copies a local file to ``uri`` (mem://...)."""
    with open(local_path, "rb") as f:
        OBJECTS[uri] = (f.read(), time.time())
