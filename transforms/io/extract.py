"""HTML to text with a maintained extractor (trafilatura or resiliparse), chosen in the config.

The default was chosen by measurement: `python bench/extraction.py` (token F1 against the article
extraction benchmark's ground truth, and pages/s, side by side); the README gives the figures.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import version
from typing import Annotated, Any, Literal

from ouroboros.transforms.base import DocumentStage, StrictModel, Verdict
from ouroboros.transforms.io.limits import LimitExceeded, binary_kind, html_depth
from pydantic import Field

Engine = Literal["trafilatura", "resiliparse"]


class ExtractConfig(StrictModel):
    engine: Engine = Field(
        "trafilatura",
        description="HTML-to-text extractor: trafilatura (higher F1) or resiliparse (about 11x faster, lower F1)")
    include_tables: bool = Field(True, description="keep the text of HTML tables")
    favor_precision: bool = Field(False, description="trafilatura: prefer precision over recall")
    max_html_bytes: int = Field(
        5_000_000, gt=0, description="HTML payloads larger than this are rejected before parsing")
    accept_status: tuple[Annotated[int, Field(ge=100, le=599)], ...] = Field(
        (200, 203), description="HTTP statuses worth extracting")
    max_html_depth: int = Field(
        1000, gt=0,
        description="pages whose element nesting (estimated by a tag scan before parsing) is deeper "
                    "are rejected: resiliparse is quadratic in depth (20,000 levels: 8 s, 100,000: "
                    "over 2 min) and lxml drops everything below level 255")
    max_seconds_per_page: float = Field(
        30.0, ge=0,
        description="wall-clock budget to extract one page: the extractor runs in a watchdog "
                    "subprocess that is killed and restarted when a page overruns (reject "
                    "`max_seconds_per_page`); 0 extracts in-process, without a budget")


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_HTML_SNIFF = re.compile(rb"<(!doctype html|html|head|body|p|div)[\s>]", re.IGNORECASE)


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", content_type, re.IGNORECASE)
    return m.group(1) if m else None


def decode_html(payload: bytes, content_type: str | None = None) -> str:
    """Bytes to str: HTTP charset, then <meta charset>, then resiliparse's detector."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    for candidate in (charset_from_content_type(content_type), _meta_charset(payload)):
        if candidate:
            try:
                return payload.decode(_alias(candidate))
            except (LookupError, UnicodeDecodeError):
                continue
    return bytes_to_str(payload, detect_encoding(payload))


def _meta_charset(payload: bytes) -> str | None:
    m = _CHARSET.search(payload[:4096])
    return m.group(1).decode("ascii") if m else None


def _alias(charset: str) -> str:
    # Browsers decode these labels as the superset encoding (WHATWG Encoding Standard).
    return {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252",
            "latin1": "cp1252", "ascii": "cp1252", "us-ascii": "cp1252",
            "shift_jis": "cp932", "sjis": "cp932"}.get(charset.lower(), charset)


def is_html(content_type: str | None, payload: bytes) -> bool:
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime in ("text/html", "application/xhtml+xml"):
            return True
        if mime and mime not in ("text/plain", "application/octet-stream", "unknown/unknown"):
            return False
    return bool(_HTML_SNIFF.search(payload[:2048]))


def extract_text(html: str, config: ExtractConfig) -> str:
    """The main text of a page ('' when there is none)."""
    if config.engine == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False,
                                  links=False, form_fields=False, noscript=False) or ""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=config.include_tables,
                               favor_precision=config.favor_precision, deduplicate=False,
                               with_metadata=False, output_format="txt") or ""


@lru_cache(maxsize=2)
def extractor_name(engine: str) -> str:
    return f"{engine} {version(engine)}"


class Extract(DocumentStage):
    """Turns a WARC payload into text; binary and non-HTML payloads, error statuses and pages
    beyond the size, depth or time limits are rejected with the limit's name. The raw payload
    (``_payload``) is used up: no output record carries it."""

    name = "extract"
    consumes = ("_payload",)
    batch_size = 8  # payloads are up to max_html_bytes each

    def __init__(self, config: ExtractConfig):
        self.config = config
        self._worker: ExtractorProcess | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_worker": None}  # a live process is never pickled

    def setup(self) -> None:
        # With a time budget the extractor runs in a child process, started at the first HTML
        # page (`_extractor`): a run over text shards (JSONL, WET, Parquet) never pays its
        # start-up (~10 s) or its memory (~250 MB).
        if self.config.max_seconds_per_page <= 0:
            extract_text("<html><body><p>warm up</p></body></html>", self.config)

    def _extractor(self) -> ExtractorProcess:
        if self._worker is None:
            worker = ExtractorProcess(self.config)
            worker.start()
            self._worker = worker
        return self._worker

    def teardown(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        payload = doc.get("_payload")
        if payload is None:
            return Verdict({})  # already text (WET, JSONL, Parquet, HF)
        reason = self._refuse(doc, payload)
        if reason is not None:
            return Verdict({}, reason)
        html = decode_html(payload, doc.get("content_type"))
        if self.config.max_seconds_per_page > 0:
            try:
                text = self._extractor().extract(html, self.config.max_seconds_per_page)
            except LimitExceeded as exc:
                return Verdict({}, f"max_seconds_per_page:seconds={exc.value:.1f}")
        else:
            text = extract_text(html, self.config)
        return Verdict({"text": text, "extractor": extractor_name(self.config.engine)})

    def _refuse(self, doc: Mapping[str, Any], payload: bytes) -> str | None:
        """Why a payload is not extracted (status, type, size, depth), checked before parsing."""
        status = doc.get("http_status")
        if status is not None and status not in self.config.accept_status:
            return f"http_status:status={status}"
        if not is_html(doc.get("content_type"), payload):
            return f"unsupported_content_type:type={(doc.get('content_type') or 'unknown')[:60]}"
        kind = binary_kind(payload)  # servers label PDFs and images text/html
        if kind is not None:
            return f"binary_payload:kind={kind}"
        if len(payload) > self.config.max_html_bytes:
            return f"max_html_bytes:bytes={len(payload)}"
        depth = html_depth(payload, self.config.max_html_depth)
        if depth > self.config.max_html_depth:
            return f"max_html_depth:depth>{self.config.max_html_depth}"
        return None


# --- the watchdog: extraction in a child process that can be killed -------------------------------
# A page built to hang the parser cannot be interrupted inside the worker: `signal.alarm` works only
# in the main thread (Beam runs DoFns in worker threads) and a thread cannot be killed. A child
# process can. Pages travel over pipes as length-prefixed UTF-8 (no pickle); the child is started
# once per stage instance and restarted only after a timeout or crash.

_HEADER = struct.Struct(">BQ")  # status (0 ok, 1 error), length
_READY = b"R"


class ExtractorProcess:
    """One extractor subprocess with a per-page wall-clock budget."""

    def __init__(self, config: ExtractConfig, start_timeout_s: float = 120.0):
        self._config = config
        self._start_timeout = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.restarts = 0  # pages that overran or crashed the child (it restarts on the next page)

    def start(self) -> None:
        # Logging is set up before the import: importing Beam logs a warning through the root
        # logger (apitools missing), which would otherwise print once per extractor process.
        code = ("import logging; logging.basicConfig(level=logging.ERROR); "
                "from ouroboros.transforms.io.extract import _worker_main; _worker_main()")
        cmd = [sys.executable, "-c", code, self._config.model_dump_json()]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        weakref.finalize(self, _kill, proc)
        self._proc = proc
        if _read_exact(proc.stdout.fileno(), 1, time.monotonic() + self._start_timeout) != _READY:
            self.stop()
            raise RuntimeError("extractor process failed to start")

    def stop(self) -> None:
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None

    def extract(self, html: str, budget_s: float) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.start()
            proc = self._proc
            data = html.encode("utf-8", "replace")
            began = time.monotonic()
            try:
                proc.stdin.write(struct.pack(">Q", len(data)) + data)
                proc.stdin.flush()
                status, length = _HEADER.unpack(
                    _read_exact(proc.stdout.fileno(), _HEADER.size, began + budget_s))
                body = _read_exact(proc.stdout.fileno(), length, began + budget_s + 5)
            except TimeoutError:
                self.stop()
                self.restarts += 1
                raise LimitExceeded("max_seconds_per_page", time.monotonic() - began,
                                    budget_s) from None
            except (BrokenPipeError, EOFError) as exc:
                code = proc.poll()
                self.stop()
                self.restarts += 1
                raise RuntimeError(f"extractor process died (exit code {code})") from exc
        text = body.decode("utf-8")
        if status:
            raise RuntimeError(f"extractor failed: {text}")
        return text


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    """`n` bytes from a pipe, or TimeoutError at `deadline`, or EOFError if the writer died."""
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _worker_main() -> None:
    """The child: reads pages from stdin, writes texts to stdout, until stdin closes."""
    logging.basicConfig(level=logging.ERROR)
    config = ExtractConfig.model_validate(json.loads(sys.argv[1]))
    extract_text("<html><body><p>warm up</p></body></html>", config)
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    out.write(_READY)
    out.flush()
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        (length,) = struct.unpack(">Q", head)
        html = inp.read(length).decode("utf-8")
        try:
            status, text = 0, extract_text(html, config)
        except Exception as exc:  # reported to the parent, which records it as an error
            status, text = 1, f"{type(exc).__name__}: {exc}"
        data = text.encode("utf-8", "replace")
        out.write(_HEADER.pack(status, len(data)) + data)
        out.flush()
