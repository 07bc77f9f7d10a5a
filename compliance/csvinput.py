"""Reading CSV files for the intake commands: streamed, with line numbers and clear errors.

A file that cannot be opened, is not UTF-8 (a UTF-16 or UTF-32 file is named as such, with or
without a byte order mark), or has the wrong header is a `CSVFileError` (the command prints it and
exits 2). A bad row is the row's problem only: the reader yields it with its line number, and the
command reports it and goes on.

One record is one line: no column of these files may hold a line break. A quote that opens a
field and is not closed on its line (a stray `"`) would otherwise swallow every following line up
to the next quote; the line is reported where the quote starts, and reading resumes on the next
line, so the good rows after it are read as usual.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections import deque
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
        buffered = io.BufferedReader(counter, 1 << 16)
        problem = _encoding_problem(buffered.peek(4096)[:4096])
        if problem:
            buffered.close()
            raise CSVFileError(f"{self.path} {problem}: save it as UTF-8 (expected a CSV header: {self._expected()})")
        # surrogateescape keeps undecodable bytes visible per row instead of failing the whole file.
        text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")
        lines = _Lines(text)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise CSVFileError(f"{self.path} is empty: expected a header line") from None
        except csv.Error as exc:
            raise CSVFileError(f"{self.path}: the header line cannot be read as CSV ({exc})") from None
        if len(lines.taken) > 1:
            raise CSVFileError(f'{self.path}: the header line has a quote (") that is not closed on that line')
        header = [h.strip().lower() for h in header]
        self._check_header(header)
        return self._rows(reader, header, text, lines), total, counter

    def _expected(self) -> str:
        return ", ".join([*self.required, *(f"[{c}]" for c in self.optional)])

    def _check_header(self, header: list[str]) -> None:
        expected = self._expected()
        for h in header:
            if bad := _UNDECODABLE.search(h):
                raise CSVFileError(
                    f"{self.path} is not UTF-8 text ({_byte_of(bad.group())}): save it as UTF-8 "
                    f"(expected a CSV header: {expected})"
                )
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

    def _rows(self, reader, header: list[str], text, lines: _Lines) -> Iterator[Row]:
        width = len(header)
        with text:
            while True:
                lines.taken.clear()
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    # E.g. a field over the csv module's size limit, after a stray quote: report
                    # it where it started and read the lines it swallowed again.
                    start = lines.taken[0][0] if lines.taken else lines.line
                    lines.give_back(lines.taken[1:])
                    yield Row(start, {}, f"cannot be read as CSV ({exc})")
                    continue
                line = lines.taken[0][0]
                if len(lines.taken) > 1:
                    lines.give_back(lines.taken[1:])
                    yield Row(line, {}, 'a quote (") opens a field that is not closed on this line; line skipped')
                    continue
                if not fields or all(not f.strip() for f in fields):
                    continue  # blank line
                for f in fields:
                    if bad := _UNDECODABLE.search(f):
                        yield Row(line, {}, f"is not valid UTF-8 text ({_byte_of(bad.group())})")
                        break
                else:
                    if len(fields) != width:
                        yield Row(line, {}, f"has {len(fields)} fields, the header has {width}")
                        continue
                    yield Row(line, dict(zip(header, fields, strict=True)))


class _Lines:
    """The file's physical lines for `csv.reader`, numbered, one record per line: the lines the
    reader took for its last record are in `taken`; `give_back` makes it read some of them again
    (after a quote that ran over the end of its line)."""

    def __init__(self, text) -> None:
        self._text = text
        self._again: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []
        self.line = 1  # the number of the next line read from the file

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            number, line = self._again.popleft()
        else:
            line = next(self._text)  # StopIteration at the end
            number, self.line = self.line, self.line + 1
        self.taken.append((number, line))
        return line

    def give_back(self, taken: list[tuple[int, str]]) -> None:
        self._again.extendleft(reversed(taken))


def _byte_of(surrogate: str) -> str:
    byte = ord(surrogate) - 0xDC00
    hint = "; a Latin-1 or Windows-1252 file?" if byte >= 0xA0 else ""
    return f"byte 0x{byte:02X} is not UTF-8{hint}"


def _encoding_problem(head: bytes) -> str | None:
    """Name an encoding that is not UTF-8 from the file's first bytes, or None. A UTF-16 file
    without a byte order mark has a NUL byte beside every ASCII character of its header."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "is UTF-32 text (it starts with a UTF-32 byte order mark)"
    if head.startswith(b"\xff\xfe"):
        return "is UTF-16 little-endian text (it starts with a UTF-16 byte order mark)"
    if head.startswith(b"\xfe\xff"):
        return "is UTF-16 big-endian text (it starts with a UTF-16 byte order mark)"
    first = head.split(b"\n", 1)[0]
    if b"\x00" not in first:
        return None
    even, odd = first[0::2].count(0), first[1::2].count(0)
    if odd * 2 >= len(first) // 2 and even * 4 <= odd:
        return "looks like UTF-16 little-endian text without a byte order mark (a NUL byte after each letter)"
    if even * 2 >= len(first) // 2 and odd * 4 <= even:
        return "looks like UTF-16 big-endian text without a byte order mark (a NUL byte before each letter)"
    return "has NUL bytes in its header line: it is not UTF-8 text"
