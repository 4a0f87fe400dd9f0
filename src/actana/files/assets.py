"""Run input and output files ("assets"): the rules, name sanitising, and streaming storage.

Inputs come as a multipart upload from a user, outputs as one from the (hostile) sandbox. Both
go through `receive_assets`: file data goes to disk slice by slice, every cap is checked before
a slice is written, and at the first broken rule reading stops, everything this call wrote is
deleted and `AssetRejected` is raised. Only the capped non-file fields (e.g. the run's `prompt`)
are held in memory.

Stored names are generated (`sanitize_name`, then `dedupe_name`; re-exported from `uploads`);
the uploader's name is kept only as escaped metadata. Files are created O_CREAT|O_EXCL|O_NOFOLLOW
relative to an opened directory, so no symlink or swapped path can redirect a write.
`collect_assets` applies the same rules to files already on disk (a sandbox's assets folder),
skipping anything that is not a plain regular file.

Status codes (`AssetRejected.http_status`): every cap is 413; a file type outside the allow-list
and an empty file name are 422 (the request is well-formed but its content is refused; 415
would wrongly blame the request's own media type); malformed multipart/form-data is 400.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from actana.exceptions import InvalidInputError
from actana.files.uploads import (
    ExclusiveFolder,
    MalformedMultipart,
    MultipartReader,
    PartInfo,
    list_names,
    open_directory,
    open_regular_file,
    split_extension,
    write_all,
)
from actana.files.uploads import dedupe_name as dedupe_name  # re-exported: part of this API
from actana.files.uploads import sanitize_name as sanitize_name
from actana.protocol.archives import printable

# The allow-list is about what a file can do once it leaves the sandbox, not about what the agent
# can read: no executables or installers (.exe .dll .so .msi .bat .cmd .ps1 .vbs .jar .apk),
# no macro-capable office formats (.doc .xls .ppt .docm .xlsm .pptm), no active web content
# beyond plain HTML (.svg .php .jsp .asp), no key or secret files (.pem .key .env). HTML is
# allowed because reports are often HTML; downloads must be served as attachments.
EXTENSION_GROUPS: dict[str, str] = {
    "text and data": ".txt .md .markdown .rst .csv .tsv .json .jsonl .ndjson .yaml .yml .toml "
    ".ini .cfg .xml .html .htm .css .log .tex .bib .diff .patch .ipynb .parquet",
    "documents (macro-free OOXML, OpenDocument)": ".pdf .docx .xlsx .pptx .odt .ods .odp .rtf",
    "raster images": ".png .jpg .jpeg .gif .webp .bmp .tif .tiff",
    "archives (unpacked, if ever, by actana.files.archive)": ".zip .tar .gz .tgz",
    "source code the agent reads or runs in its sandbox": ".py .js .mjs .ts .tsx .jsx .sql .sh "
    ".r .rb .go .rs .java .kt .c .h .cpp .hpp .cs .swift .lua",
}
DEFAULT_EXTENSIONS = frozenset(ext for group in EXTENSION_GROUPS.values() for ext in group.split())

_CHUNK = 64 * 1024
_MIB = 1024 * 1024
# Files are read back by the trusted side only (the sandbox gets copies), so owner-only.
FILE_MODE = 0o600
_STATUS = {
    **dict.fromkeys(("too_many_files", "file_too_large", "total_too_large"), 413),
    **dict.fromkeys(("too_many_fields", "field_too_large", "fields_too_large"), 413),
    **dict.fromkeys(("extension", "empty_name"), 422),
    "bad_request": 400,
}


@dataclass(frozen=True)
class AssetRules:
    """The limits for one upload (or one collection) of run files.

    Attributes:
        max_files: files per upload.
        max_file_bytes: size of any one file.
        max_total_bytes: sum of the sizes of all files of the upload.
        allowed_extensions: lower-case extensions with the dot; see `DEFAULT_EXTENSIONS`.
        max_name_length: length of a stored name (ASCII, so characters are bytes).
    """

    max_files: int = 20
    max_file_bytes: int = 25 * _MIB
    max_total_bytes: int = 50 * _MIB
    allowed_extensions: frozenset[str] = DEFAULT_EXTENSIONS
    max_name_length: int = 200

    def __post_init__(self) -> None:
        """Refuse rules that could not be enforced as written."""
        if min(self.max_files, self.max_file_bytes, self.max_total_bytes) < 1:
            raise ValueError("asset limits must be positive")
        if self.max_name_length < 32:
            raise ValueError("max_name_length must leave room for a name and its extension")
        odd = sorted(e for e in self.allowed_extensions if e != e.lower() or e[:1] != ".")
        if odd:
            raise ValueError(f"extensions must be lower-case and start with '.': {odd}")


_DEFAULT_RULES = AssetRules()


@dataclass(frozen=True)
class StoredAsset:
    """One file as stored.

    Attributes:
        name: the stored (sanitised, de-duplicated) file name inside the destination folder.
        original_name: the uploader's name, escaped for display; metadata only.
        size: bytes written.
        sha256: hex digest of the bytes written.
        path: `dest / name`.
    """

    name: str
    original_name: str
    size: int
    sha256: str
    path: Path


class AssetRejected(InvalidInputError):
    """An upload broke an asset rule; nothing from it was kept.

    Attributes:
        rule: too_many_files, file_too_large, total_too_large, extension, empty_name,
            too_many_fields, field_too_large, fields_too_large or bad_request. Also the API
            error `code`.
        file: the uploader's name of the offending file, escaped for display, or None.
        field: the form field at fault (the file field for file rules), or None.
        http_status: 413 for caps, 422 for extension/empty_name, 400 for bad_request.
        fields: the text fields received before the rejection (`receive_assets` fills it), so
            a form can be shown again with what was typed.
    """

    def __init__(
        self, rule: str, problem: str, *, file: str | None = None, field: str | None = None
    ) -> None:
        """Build the error; the message says which file (or field), which rule and the limit."""
        if file is not None:
            where = f"file '{file}'"
        elif field is not None:
            where = f"field '{printable(field)}'"
        else:
            where = "upload"
        super().__init__(f"{where} rejected (rule {rule}): {problem}", field=field)
        self.rule = rule
        self.file = file
        self.code = rule
        self.fields: dict[str, str] = {}
        self.http_status = _STATUS[rule]


def _size(n: int) -> str:
    return f"{n // _MIB} MiB" if n % _MIB == 0 else f"{n} bytes"  # limits as people set them


@dataclass(frozen=True)
class _FieldLimits:
    max_bytes: int
    max_count: int
    max_total_bytes: int


class _Receiver:
    """Stores the parts of one upload under the rules (a `PartHandler`)."""

    def __init__(self, dest: Path, rules: AssetRules, file_field: str, limits: _FieldLimits):
        self._folder = ExclusiveFolder(dest)
        self._rules, self._file_field, self._limits = rules, file_field, limits
        # Names already in the folder (the run's own earlier files) are never overwritten.
        self._taken = set(self._folder.existing)
        self.stored: list[StoredAsset] = []
        self.fields: dict[str, str] = {}
        self._files = self._total = self._field_total = 0
        self._fd: int | None = None  # the file part being written, if any
        self._name = self._shown = ""
        self._hash, self._size = hashlib.sha256(), 0
        self._field: bytearray | None = None  # the field part being collected, if any
        self._field_name = ""
        # Chunks are parsed in worker threads; the lock and the flag keep finish() from racing
        # a write, and a late chunk from writing through a closed (maybe reused) descriptor.
        self._lock = threading.Lock()
        self._closed = False

    def start_part(self, part: PartInfo) -> None:
        """Open the destination of a file part, or start collecting a field."""
        if part.filename is not None:
            if part.name != self._file_field:
                problem = f"it carries a file; send files in the '{self._file_field}' field"
                raise AssetRejected("bad_request", problem, field=part.name)
            self._start_file(part.filename)
            return
        if part.name == self._file_field:
            raise AssetRejected("bad_request", "the part has no filename", field=part.name)
        if part.name in self.fields:
            raise AssetRejected("bad_request", "it is sent more than once", field=part.name)
        if len(self.fields) >= self._limits.max_count:
            problem = f"at most {self._limits.max_count} fields are accepted"
            raise AssetRejected("too_many_fields", problem, field=part.name)
        self._field, self._field_name = bytearray(), part.name

    def _file_error(self, rule: str, problem: str, shown: str) -> AssetRejected:
        return AssetRejected(rule, problem, file=shown, field=self._file_field)

    def _start_file(self, original: str) -> None:
        rules, shown = self._rules, printable(original)
        if not original.strip():
            raise self._file_error("empty_name", "its file name is empty", shown)
        self._files += 1
        if self._files > rules.max_files:
            problem = f"it is file {self._files}; at most {rules.max_files} are accepted"
            raise self._file_error("too_many_files", problem, shown)
        name = sanitize_name(original, max_length=rules.max_name_length)
        extension = split_extension(name)[1].lower()
        if extension not in rules.allowed_extensions:
            kind = f"'{extension}' files are" if extension else "files without an extension are"
            allowed = " ".join(sorted(rules.allowed_extensions))
            raise self._file_error("extension", f"{kind} not accepted (allowed: {allowed})", shown)
        while self._fd is None:
            name = dedupe_name(name, self._taken, max_length=rules.max_name_length)
            self._taken.add(name)
            try:
                self._fd = self._folder.create(name, FILE_MODE)
            except FileExistsError:  # appeared since the folder was listed; take the next name
                continue
        self._name, self._shown, self._hash, self._size = name, shown, hashlib.sha256(), 0

    def part_data(self, data: memoryview) -> None:
        """Check the caps for the next slice, then write it (file) or keep it (field)."""
        n, rules, limits = len(data), self._rules, self._limits
        if self._fd is not None:
            if self._size + n > rules.max_file_bytes:
                problem = f"it is larger than the per-file limit of {_size(rules.max_file_bytes)}"
                raise self._file_error("file_too_large", problem, self._shown)
            if self._total + n > rules.max_total_bytes:
                limit = _size(rules.max_total_bytes)
                problem = f"with it the files exceed the total limit of {limit}"
                raise self._file_error("total_too_large", problem, self._shown)
            self._size, self._total = self._size + n, self._total + n
            self._hash.update(data)
            write_all(self._fd, data)
        elif self._field is not None:
            if len(self._field) + n > limits.max_bytes:
                problem = f"it is larger than the limit of {_size(limits.max_bytes)}"
                raise AssetRejected("field_too_large", problem, field=self._field_name)
            if self._field_total + n > limits.max_total_bytes:
                problem = f"with it the fields exceed {_size(limits.max_total_bytes)} in total"
                raise AssetRejected("fields_too_large", problem, field=self._field_name)
            self._field_total += n
            self._field += data

    def end_part(self) -> None:
        """Close the finished file and record it, or decode the finished field."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            path = self._folder.path / self._name
            digest = self._hash.hexdigest()
            self.stored.append(StoredAsset(self._name, self._shown, self._size, digest, path))
        elif self._field is not None:
            try:
                self.fields[self._field_name] = self._field.decode("utf-8")
            except UnicodeDecodeError:
                problem = "its value is not UTF-8"
                raise AssetRejected("bad_request", problem, field=self._field_name) from None
            self._field, self._field_name = None, ""

    def feed(self, reader: MultipartReader, chunk: bytes) -> None:
        """Parse one chunk of the body (called in a worker thread)."""
        with self._lock:
            if self._closed:
                return
            try:
                reader.feed(chunk)
            except MalformedMultipart as exc:
                raise AssetRejected("bad_request", str(exc)) from exc

    def finish(self, *, ok: bool) -> None:
        """Release the folder; unless `ok`, first delete every file this upload created."""
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if not ok:
                self._folder.remove_created()
                self.stored.clear()
            self._folder.close()


async def receive_assets(
    body: AsyncIterator[bytes],
    content_type: str,
    dest: Path,
    rules: AssetRules = _DEFAULT_RULES,
    *,
    file_field: str = "files",
    max_field_bytes: int = 1_000_000,
    max_fields: int = 32,
    max_total_field_bytes: int = 2_000_000,
) -> tuple[list[StoredAsset], dict[str, str]]:
    """Store the files of a streamed multipart/form-data body in `dest` under `rules`.

    Every part named `file_field` with a filename becomes a file in `dest` under its sanitised,
    de-duplicated name (names already in `dest` count as taken and are never overwritten). Every
    other part is a text field. The caps are checked before each slice is written; at the first
    broken rule reading stops and every file this call created is deleted. The body as a whole
    is capped too (the caps plus 64 KiB of framing per part); after the closing boundary nothing
    more is read.

    Args:
        body: the request body, chunk by chunk (e.g. Starlette's `request.stream()`).
        content_type: the request's Content-Type header, with its boundary.
        dest: an existing directory (not a symlink): an empty one, or the run's own folder.
        rules: the file limits; `file_field` names the form field that carries files.
        max_field_bytes, max_fields, max_total_field_bytes: caps on the non-file fields (bytes
            of UTF-8 in one, how many, bytes in all).

    Returns:
        The stored files in upload order, and the non-file fields by name.

    Raises:
        AssetRejected: a rule is broken or the body is not valid multipart/form-data.
        OSError: `dest` is not an existing directory, or the disk failed.
    """
    limits = _FieldLimits(max_field_bytes, max_fields, max_total_field_bytes)
    receiver = _Receiver(dest, rules, file_field, limits)
    # Part headers are capped by the parser, but bytes it skips (line breaks before the first
    # boundary) are seen by no cap; the body cap bounds how long a hostile sender can feed us.
    framing = (rules.max_files + max_fields + 1) * _CHUNK
    max_body, received, ok = rules.max_total_bytes + max_total_field_bytes + framing, 0, False
    try:
        try:
            reader = MultipartReader(content_type, receiver)
        except MalformedMultipart as exc:
            raise AssetRejected("bad_request", str(exc)) from exc
        async for chunk in body:
            received += len(chunk)
            if received > max_body:
                raise AssetRejected("total_too_large", f"the body is larger than {max_body} bytes")
            # Parsing and disk writes run in a worker thread so a slow disk never stalls the
            # event loop; the receiver's lock orders them with the clean-up below.
            await asyncio.to_thread(receiver.feed, reader, chunk)
            if reader.finished:
                break  # the epilogue is ignored, and an endless one must not keep us reading
        try:
            reader.close()
        except MalformedMultipart as exc:
            raise AssetRejected("bad_request", str(exc)) from exc
        ok = True
    except AssetRejected as exc:
        exc.fields = dict(receiver.fields)
        raise
    finally:
        receiver.finish(ok=ok)
    return receiver.stored, receiver.fields


def collect_assets(
    source: Path, dest: Path, rules: AssetRules = _DEFAULT_RULES
) -> tuple[list[StoredAsset], list[str]]:
    """Copy the files directly inside `source` (e.g. a sandbox's assets folder) into `dest`.

    The same rules and naming as `receive_assets` apply, in name order. Entries that are not
    plain regular files (symlinks, directories, FIFOs, devices, sockets, hard links) are skipped
    and reported, never followed. Synchronous: call it via `asyncio.to_thread` from async code.

    Returns:
        The stored files, and the escaped names of the skipped entries.

    Raises:
        AssetRejected: as for `receive_assets` (too many entries is too_many_files).
        OSError: `source` or `dest` is not an existing directory.
    """
    skipped: list[str] = []
    src_fd = open_directory(source)
    try:
        receiver, ok = _Receiver(dest, rules, "files", _FieldLimits(0, 0, 0)), False
        try:
            limit = max(100, 5 * rules.max_files)
            names = list_names(src_fd, limit)
            if names is None:
                problem = f"the folder holds more than {limit} entries"
                raise AssetRejected("too_many_files", problem)
            for name in sorted(names):
                fd = open_regular_file(src_fd, name)
                if fd is None:
                    skipped.append(printable(name))
                    continue
                try:
                    receiver.start_part(PartInfo("files", name))
                    while chunk := os.read(fd, _CHUNK):
                        receiver.part_data(memoryview(chunk))
                    receiver.end_part()
                finally:
                    os.close(fd)
            ok = True
        finally:
            receiver.finish(ok=ok)
    finally:
        os.close(src_fd)
    return receiver.stored, skipped
