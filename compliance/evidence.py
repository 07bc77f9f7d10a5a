"""Tamper-evident evidence: hash chains over checks, attributions and the audit trail.

Every chained row stores `chain_hash = SHA-256(previous hash + "\\n" + the row's canonical form)`,
hex; the first row of a chain follows `GENESIS` (64 zeros). The canonical form is a JSON array:
the model's label, then every covered field in model order (times as integer microseconds since
1970-01-01 UTC, IP addresses in exploded form, JSON values with sorted keys; compact separators,
UTF-8). So any change to a stored row, its removal or its reordering breaks the link after it,
and `verify_evidence` (compliance/management/commands/verify_evidence.py) finds the first broken one.

Which chains, and why they never fork:

- **checks** and **attributions**: one chain per notice, in id order; the head (the last row's
  hash) is on the notice (`check_chain_head`, `attribution_chain_head`). Every writer appends while
  it holds the notice's row lock (the monitor's record step holds it anyway; `lock_heads` takes it
  `FOR UPDATE`), so two monitors never link two rows to the same predecessor, and the ids of a
  notice's rows follow their chain order. Per-notice chains also let one notice's evidence be
  proved on its own (the signed bundle) and cost the monitor no global lock.
- **audit**: one chain over the whole trail, in id order; its head is the `ChainHead` row `audit`,
  locked `FOR UPDATE` by each writer until its transaction ends. Audit events are human-paced, so a
  global lock costs nothing measurable; write them late in a transaction (the lock is held to the end).

On SQLite every write transaction takes the database's write lock at its start (IMMEDIATE), which
serialises the writers by itself.

The daily digest (`compute_digest`, a drain in monitor/evidence_digest.py) commits to every chain's head
up to a cut-off id; it goes into the audit trail (so the trail chains the digests) and, with
`EVIDENCE_TSA_URL`, gets an RFC 3161 timestamp. Deleting the newest rows of a chain and rewriting
its head is only detectable against a digest made after them: that is what the digest is for.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from django.apps import apps
from django.db import connection, models, transaction
from django.utils import timezone

from compliance import bulk

GENESIS = "0" * 64
DIGEST_VERSION = 1

# How a covered field's value is normalised before hashing.
_DT, _IP, _INT, _BOOL, _PLAIN = range(5)


def _kind(f: models.Field) -> int:
    if isinstance(f, models.DateTimeField):
        return _DT
    if isinstance(f, models.GenericIPAddressField):
        return _IP
    if isinstance(f, models.BooleanField):
        return _BOOL
    if isinstance(f, models.IntegerField | models.ForeignKey):
        return _INT
    return _PLAIN  # text, and JSON (hashed as the parsed value, keys sorted)


def utc_text(v: datetime) -> str:
    """A moment for people (the evidence file): UTC, ISO 8601, microseconds."""
    return v.astimezone(UTC).isoformat(timespec="microseconds")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _us(v: datetime) -> int:
    """A moment as the chains hash it: integer microseconds since 1970-01-01 UTC."""
    if v.tzinfo is None:
        raise ValueError("evidence times must be aware")
    return (v - _EPOCH) // _MICROSECOND


@functools.lru_cache(maxsize=65_536)
def _ip(v) -> str:
    """An address in exploded form (stable across Python versions and databases); the same few
    addresses recur in every batch, hence the cache."""
    return ipaddress.ip_address(v if not isinstance(v, str) else v.split("/")[0]).exploded


_NORMALISERS = {_DT: _us, _IP: _ip, _INT: int, _BOOL: bool, _PLAIN: None}
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normalise(funcs: Sequence, values: Sequence) -> list:
    return [v if f is None or v is None else f(v) for f, v in zip(funcs, values, strict=True)]


def link_hash(prev: str, canonical: bytes) -> str:
    return hashlib.sha256(prev.encode("ascii") + b"\n" + canonical).hexdigest()


class Chain:
    """The chain of one model: which fields it covers, how rows are grouped, where the head is.

    Declared on the model as `evidence_chain = Chain(...)`; `group` is the attname of the per-notice
    chains ("notice_id") or None for one global chain whose head is the ChainHead row `name`.
    """

    def __init__(self, name: str, *, group: str | None, head_field: str = "", exclude: Iterable[str] = ()):
        self.name = name
        self.group = group
        self.head_field = head_field
        self.exclude = frozenset(exclude)
        self.model: type[models.Model] | None = None

    def __set_name__(self, owner, attr):
        self.model = owner

    @cached_property
    def covered(self) -> list[models.Field]:
        return [
            f
            for f in self.model._meta.concrete_fields
            if not f.primary_key and f.attname != "chain_hash" and f.attname not in self.exclude
        ]

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The covered attnames, in the order they are hashed."""
        return tuple(f.attname for f in self.covered)

    @cached_property
    def kinds(self) -> tuple[int, ...]:
        return tuple(_kind(f) for f in self.covered)

    @cached_property
    def normalisers(self) -> tuple:
        return tuple(_NORMALISERS[k] for k in self.kinds)

    @cached_property
    def label(self) -> str:
        # The table's name, not the model's label: it stays when a model moves between apps (checks
        # and attributions moved from the monitor app to compliance), so its hashes stay valid.
        return self.model._meta.db_table

    def canonical(self, values: Sequence) -> bytes:
        """The row's canonical form; `values` in `fields` order."""
        return _ENCODER.encode([self.label, *_normalise(self.normalisers, values)]).encode()

    def link(self, prev: str, values: Sequence) -> str:
        return link_hash(prev, self.canonical(values))

    def values_of(self, instance: models.Model) -> list:
        values = []
        for attname, kind in zip(self.fields, self.kinds, strict=True):
            v = getattr(instance, attname)
            if kind == _DT and v is not None and timezone.is_naive(v):
                v = timezone.make_aware(v)  # as Django stores it
            values.append(v)
        return values


def chains() -> list[Chain]:
    """Every chained model's chain (models declare theirs), in a stable order."""
    found = [m.evidence_chain for m in apps.get_models() if getattr(m, "evidence_chain", None) is not None]
    return sorted(found, key=lambda c: c.name)


# --- Writing -----------------------------------------------------------------------------------


def _notice_model():
    from compliance.models import Notice

    return Notice


def lock_heads(chain: Chain, keys: Iterable) -> dict:
    """Lock the heads of `keys` (notice ids; for a global chain ignored) and return them.

    Must run inside the transaction that appends the rows: the lock is what keeps the chain
    from forking, and it is held until that transaction ends.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("chain heads are locked inside the transaction that appends the rows")
    if chain.group is None:
        from compliance.models import ChainHead

        ChainHead.objects.get_or_create(name=chain.name, defaults={"head": GENESIS})
        row = ChainHead.objects.select_for_update().get(name=chain.name)
        return {None: row.head or GENESIS}
    notice = _notice_model()
    heads = {}
    keys = sorted(set(keys))  # one lock order for everybody: no deadlock between two writers
    if connection.vendor == "postgresql":
        # One statement, server-side binding in binary (the monitor calls this for every chunk of
        # checks; Django's client-side cursor spent most of the time quoting the id array).
        import psycopg

        connection.ensure_connection()
        table = connection.ops.quote_name(notice._meta.db_table)
        column = connection.ops.quote_name(chain.head_field)
        with psycopg.Cursor(connection.connection) as raw:
            raw.execute(
                f"SELECT id, {column} FROM {table} WHERE id = ANY(%b) ORDER BY id FOR UPDATE", [keys], binary=True
            )
            return {k: h or GENESIS for k, h in raw}
    for chunk in bulk.chunks(keys):
        qs = notice.objects.filter(pk__in=chunk).order_by("pk")
        if connection.features.has_select_for_update:
            qs = qs.select_for_update()
        heads.update((k, h or GENESIS) for k, h in qs.values_list("pk", chain.head_field))
    return heads


def store_heads(chain: Chain, heads: dict, *, appended: int) -> None:
    """Write the moved heads back (the ones `lock_heads` locked)."""
    if chain.group is None:
        from compliance.models import ChainHead

        ChainHead.objects.filter(name=chain.name).update(head=heads[None], length=models.F("length") + appended)
        return
    if not heads:
        return
    notice = _notice_model()
    table = connection.ops.quote_name(notice._meta.db_table)
    column = connection.ops.quote_name(chain.head_field)
    if connection.vendor == "postgresql":
        import psycopg

        with psycopg.Cursor(connection.connection) as raw:
            raw.execute(
                f"UPDATE {table} AS n SET {column} = v.h FROM unnest(%b::bigint[], %b::text[]) AS v(id, h)"
                " WHERE n.id = v.id",
                [list(heads), list(heads.values())],
                binary=True,
            )
        return
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE id = %s", [(h, k) for k, h in heads.items()])


def link_rows(chain: Chain, rows: Sequence[Sequence], heads: dict, *, key: Callable[[Sequence], object]) -> list[str]:
    """The hashes of `rows` (values in `chain.fields` order), appended in list order to the
    chains in `heads` (moved on in place). Pure: the caller locked and will store the heads."""
    out = []
    link = chain.link
    for row in rows:
        k = key(row)
        h = link(heads[k], row)
        heads[k] = h
        out.append(h)
    return out


def append_rows(chain: Chain, rows: Sequence[Sequence], *, key: Callable[[Sequence], object]) -> list[str]:
    """Lock the heads of `rows`' chains, link the rows, store the new heads; returns the rows'
    hashes, which the caller inserts with the rows in the same transaction."""
    heads = lock_heads(chain, {key(r) for r in rows})
    hashes = link_rows(chain, rows, heads, key=key)
    store_heads(chain, {k: heads[k] for k in {key(r) for r in rows}}, appended=len(rows))
    return hashes


def save_linked(instance: models.Model, save: Callable[[], None]) -> None:
    """AppendOnlyModel.save for a chained model: lock, link, insert, move the head."""
    chain = instance.evidence_chain
    with transaction.atomic(using=instance._state.db):
        key = getattr(instance, chain.group) if chain.group else None
        heads = lock_heads(chain, [key])
        if key not in heads:
            raise ValueError(f"{chain.name}: notice {key} does not exist")
        instance.chain_hash = chain.link(heads[key], chain.values_of(instance))
        save()
        store_heads(chain, {key: instance.chain_hash}, appended=1)


# --- Verifying ---------------------------------------------------------------------------------


@dataclass
class Break:
    chain: str
    notice_id: int | None
    row_id: int | None
    reason: str

    def as_dict(self) -> dict:
        return {"chain": self.chain, "notice_id": self.notice_id, "row_id": self.row_id, "reason": self.reason}


@dataclass
class ChainReport:
    chain: str
    rows: int = 0
    chains: int = 0
    broken: int = 0
    first: Break | None = None
    # The digest's view: hasher over "key:head-at-cutoff" lines, and rows up to the cut-off.
    cutoff: int | None = None
    cut_rows: int = 0
    cut_hasher: object = field(default_factory=hashlib.sha256)
    cut_chains: int = 0

    def breaks(self, b: Break) -> None:
        self.broken += 1
        if self.first is None:
            self.first = b

    def summary(self) -> dict:
        return {"rows": self.rows, "chains": self.chains, "broken": self.broken}


def _rows(chain: Chain, *, cutoff: int | None = None, chunk: int = 20_000) -> Iterator[tuple]:
    """(group, id, stored hash, *covered values) in chain order, streamed."""
    order = [chain.group, "id"] if chain.group else ["id"]
    qs = chain.model._default_manager.order_by(*order)
    if cutoff is not None:
        qs = qs.filter(id__lte=cutoff)
    group = chain.group or "id"
    return qs.values_list(group, "id", "chain_hash", *chain.fields).iterator(chunk_size=chunk)


def _stored_heads(chain: Chain) -> Iterator[tuple[int, str]]:
    notice = _notice_model()
    qs = notice.objects.exclude(**{chain.head_field: ""}).order_by("pk").values_list("pk", chain.head_field)
    return qs.iterator(chunk_size=20_000)


def verify(chain: Chain, *, cutoff: int | None = None) -> ChainReport:
    """Recompute `chain` link by link; compare the last hash of each chain with its stored head.

    Each link is checked against the previous row's *stored* hash, so one altered row is one
    break (the row itself, or the row after it if the alterer also rewrote its hash). With
    `cutoff` (a digest's), the heads as of that id are collected for the digest's root.
    """
    report = ChainReport(chain=chain.name, cutoff=cutoff)
    link = chain.link
    if chain.group is None:
        from compliance.models import ChainHead

        head_row = ChainHead.objects.filter(name=chain.name).first()
        prev = GENESIS
        at_cut = None
        for _g, row_id, stored, *values in _rows(chain):
            report.rows += 1
            if link(prev, values) != stored:
                report.breaks(Break(chain.name, None, row_id, "the row does not match its hash"))
            prev = stored
            if cutoff is not None and row_id <= cutoff:
                at_cut, report.cut_rows = stored, report.cut_rows + 1
        report.chains = 1 if report.rows else 0
        if head_row is not None and head_row.length and (head_row.head != prev or head_row.length != report.rows):
            report.breaks(
                Break(
                    chain.name,
                    None,
                    None,
                    f"the chain ends at {prev[:12]}… after {report.rows} rows; its head says "
                    f"{head_row.head[:12]}… after {head_row.length}: rows were removed or added outside the chain",
                )
            )
        if at_cut is not None:
            report.cut_hasher.update(f"{chain.name}:{at_cut}\n".encode())
            report.cut_chains = 1
        return report

    heads = _stored_heads(chain)
    next_head = next(heads, None)

    def check_heads_before(notice_id: int | None) -> None:
        """Stored heads of notices that have no rows at all (up to `notice_id`)."""
        nonlocal next_head
        while next_head is not None and (notice_id is None or next_head[0] < notice_id):
            report.breaks(
                Break(chain.name, next_head[0], None, "the notice has a chain head but no rows: rows were removed")
            )
            next_head = next(heads, None)

    def close(notice_id: int, last: str, last_cut: str | None) -> None:
        nonlocal next_head
        report.chains += 1
        check_heads_before(notice_id)
        if next_head is not None and next_head[0] == notice_id:
            stored_head = next_head[1]
            next_head = next(heads, None)
        else:
            stored_head = ""
        if stored_head != last:
            report.breaks(
                Break(
                    chain.name,
                    notice_id,
                    None,
                    f"the chain ends at {last[:12]}…, the notice's head is {stored_head[:12] or 'empty'}…: "
                    "rows were removed or added outside the chain",
                )
            )
        if last_cut is not None:
            report.cut_hasher.update(f"{notice_id}:{last_cut}\n".encode())
            report.cut_chains += 1

    current = None
    prev = GENESIS
    last_cut = None
    for notice_id, row_id, stored, *values in _rows(chain):
        if notice_id != current:
            if current is not None:
                close(current, prev, last_cut)
            current, prev, last_cut = notice_id, GENESIS, None
        report.rows += 1
        if link(prev, values) != stored:
            report.breaks(Break(chain.name, notice_id, row_id, "the row does not match its hash"))
        prev = stored
        if cutoff is not None and row_id <= cutoff:
            last_cut = stored
            report.cut_rows += 1
    if current is not None:
        close(current, prev, last_cut)
    check_heads_before(None)
    return report


# --- The digest --------------------------------------------------------------------------------


def cutoffs() -> dict[str, int]:
    """Per chain, an id up to which every row is committed and no later insert can come in below.

    PostgreSQL: a moment's SHARE lock on the chained tables waits for the inserts in flight and
    keeps new ones out while the last ids are read (milliseconds); ids given out afterwards are
    higher. SQLite: one writer at a time, so the last ids are final as read.
    """
    out = {}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            tables = ", ".join(connection.ops.quote_name(c.model._meta.db_table) for c in chains())
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {tables} IN SHARE MODE")
        for c in chains():
            out[c.name] = c.model._default_manager.aggregate(m=models.Max("id"))["m"] or 0
    return out


def digest_of(parts: dict[str, dict]) -> str:
    """The digest value: SHA-256 of the canonical JSON of the parts (what gets timestamped)."""
    body = json.dumps({"version": DIGEST_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def digest_parts(reports: Iterable[ChainReport]) -> dict[str, dict]:
    return {
        r.chain: {"cutoff": r.cutoff, "rows": r.cut_rows, "chains": r.cut_chains, "root": r.cut_hasher.hexdigest()}
        for r in reports
    }


def heads_at(chain: Chain, cutoff: int) -> ChainReport:
    """The digest's view of one chain without recomputing it: the stored hash of each chain's last
    row up to `cutoff` (the nightly verification recomputes them)."""
    report = ChainReport(chain=chain.name, cutoff=cutoff)
    qs = chain.model._default_manager.filter(id__lte=cutoff)
    if chain.group is None:
        last = qs.order_by("-id").values_list("chain_hash", flat=True).first()
        report.cut_rows = qs.count()
        if last is not None:
            report.cut_hasher.update(f"{chain.name}:{last}\n".encode())
            report.cut_chains = 1
        return report
    current, last = None, None
    rows = qs.order_by(chain.group, "id").values_list(chain.group, "chain_hash").iterator(chunk_size=50_000)
    for key, h in rows:
        report.cut_rows += 1
        if key != current:
            if current is not None:
                report.cut_hasher.update(f"{current}:{last}\n".encode())
                report.cut_chains += 1
            current = key
        last = h
    if current is not None:
        report.cut_hasher.update(f"{current}:{last}\n".encode())
        report.cut_chains += 1
    return report


def compute_digest() -> dict:
    """The digest of every chain's heads at this moment's cut-offs: {"digest", "parts"}."""
    cuts = cutoffs()
    parts = digest_parts(heads_at(c, cuts[c.name]) for c in chains())
    return {"digest": digest_of(parts), "parts": parts}


# --- Upgrading ---------------------------------------------------------------------------------


def backfill(chain: Chain, model: type[models.Model], notice_model: type[models.Model] | None, chain_heads=None) -> int:
    """Chain the rows written before chains existed (the migration that added them), in chain
    order. `model`/`notice_model`/`chain_heads` are the migration's historical models; the covered
    fields are the current model's (a later migration that adds a covered field must version the
    chain anyway). Runs before the triggers exist. Returns the rows chained."""
    qs = model.objects.order_by(*([chain.group, "id"] if chain.group else ["id"]))
    group = chain.group or "id"
    done = 0
    heads: dict = {}
    batch: list[tuple[str, int]] = []
    table = connection.ops.quote_name(model._meta.db_table)

    def flush() -> None:
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {table} SET chain_hash = %s WHERE id = %s", batch)
        batch.clear()

    for key, row_id, *values in qs.values_list(group, "id", *chain.fields).iterator(chunk_size=10_000):
        k = key if chain.group else None
        h = chain.link(heads.get(k, GENESIS), values)
        heads[k] = h
        batch.append((h, row_id))
        done += 1
        if len(batch) >= 10_000:
            flush()
    if batch:
        flush()
    if chain.group is None:
        if done:
            chain_heads.objects.update_or_create(name=chain.name, defaults={"head": heads[None], "length": done})
    else:
        table = connection.ops.quote_name(notice_model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET {connection.ops.quote_name(chain.head_field)} = %s WHERE id = %s",
                [(h, k) for k, h in heads.items()],
            )
    return done
