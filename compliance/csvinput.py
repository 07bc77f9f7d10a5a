"""Reading CSV files for the intake commands: streamed, with line numbers and clear errors.

A file that cannot be opened, is not UTF-8, or has the wrong header is a `CSVFileError` (the
command prints it and exits 2). A bad row is the row's problem only: the reader yields it with
its line number, and the command reports it and goes on.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Undecodable bytes, kept by errors="surrogateescape", show up as lone surrogates.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class CSVFileError(Exception):
    """The file as a whole cannot be read."""


@dataclass
class Row:
    line: int  # 1-based line number of the row's first line in the file (the header is line 1)
    values: dict[str, str]
    error: str | None = None


class _CountingReader(io.RawIOBase):
    """Counts bytes read, so a progress bar can show how far through the file we are."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self.bytes_read += n or 0
        return n


@dataclass
class CSVSource:
    path: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def open(self) -> tuple[Iterator[Row], int | None, _CountingReader]:
        """Open the file (`-` is stdin): (rows, total bytes if known, byte counter)."""
        try:
            if self.path == "-":
                raw, total = sys.stdin.buffer, None
            else:
                file_path = Path(self.path)
                if file_path.is_dir():
                    raise CSVFileError(f"{self.path} is a directory, not a CSV file")
                raw, total = open(file_path, "rb"), file_path.stat().st_size  # noqa: SIM115 (closed by the reader)
        except FileNotFoundError:
            raise CSVFileError(f"{self.path}: no such file") from None
        except PermissionError:
            raise CSVFileError(f"{self.path}: permission denied") from None
        except OSError as exc:
            raise CSVFileError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        counter = _CountingReader(raw)
        # surrogateescape keeps undecodable bytes visible per row instead of failing the whole file.
        text = io.TextIOWrapper(
            io.BufferedReader(counter, 1 << 16), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise CSVFileError(f"{self.path} is empty: expected a header line") from None
        except csv.Error as exc:
            raise CSVFileError(f"{self.path}: the header line cannot be read as CSV ({exc})") from None
        header = [h.strip().lower() for h in header]
        self._check_header(header)
        return self._rows(reader, header, text), total, counter

    def _check_header(self, header: list[str]) -> None:
        expected = ", ".join([*self.required, *(f"[{c}]" for c in self.optional)])
        if any(_UNDECODABLE.search(h) for h in header):
            raise CSVFileError(f"{self.path} is not UTF-8 text (expected a CSV header: {expected})")
        missing = [c for c in self.required if c not in header]
        unknown = [c for c in header if c not in self.required and c not in self.optional]
        duplicated = sorted({c for c in header if header.count(c) > 1})
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if duplicated:
            problems.append(f"repeated column(s) {', '.join(duplicated)}")
        if problems:
            raise CSVFileError(f"{self.path}: wrong header: {'; '.join(problems)}. Expected columns: {expected}")

    def _rows(self, reader, header: list[str], text) -> Iterator[Row]:
        width = len(header)
        with text:
            while True:
                line = reader.line_num + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield Row(line, {}, f"cannot be read as CSV ({exc})")
                    continue
                if not fields or all(not f.strip() for f in fields):
                    continue  # blank line
                if any(_UNDECODABLE.search(f) for f in fields):
                    yield Row(line, {}, "is not valid UTF-8 text")
                    continue
                if len(fields) != width:
                    yield Row(line, {}, f"has {len(fields)} fields, the header has {width}")
                    continue
                yield Row(line, dict(zip(header, fields, strict=True)))
