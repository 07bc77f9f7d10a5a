from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from compliance.models import Notice

HEADER = "url,notified_at,reference,content_sha256,hoster\n"


def run_import(tmp_path: Path, text: str, *args: str, capsys=None, name="notices.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    call_command("import_notices", str(path), *args)
    out, err = capsys.readouterr()
    return json.loads(out.strip().splitlines()[-1]), err


def test_good_rows_are_imported_and_the_last_line_is_json(db, tmp_path, capsys, prompt_hoster):
    summary, err = run_import(
        tmp_path,
        HEADER
        + "http://a.example/1,2026-01-05T10:00:00+01:00,R1,,prompt\n"
        + "https://B.example:443/2,,R2,"
        + "a" * 64
        + ",\n",
        capsys=capsys,
    )
    assert summary == {"imported": 2, "duplicates": 0, "rejected": 0, "repeats": 0}
    assert err == ""
    first = Notice.objects.get(reference="R1")
    assert first.notified_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert first.deadline_at == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
    assert first.hoster == prompt_hoster
    assert first.hoster_source == "hotline"
    second = Notice.objects.get(reference="R2")
    assert second.url == "https://b.example/2"
    assert second.content_sha256 == "a" * 64
    assert second.notified_at is not None  # default: the import time
    assert second.next_check_at is not None  # a check at intake


def test_every_kind_of_bad_row_is_reported_with_its_line_number(db, tmp_path, capsys):
    rows = [
        "http://ok.example/1,,OK1,,",  # line 2
        "ftp://bad.example/x,,B1,,",  # 3: scheme
        "http://bad.example/x,yesterday,B2,,",  # 4: date
        "http://bad.example/y,2026-01-05T10:00:00,B3,,",  # 5: no offset
        "http://bad.example/z,2999-01-01T00:00:00+00:00,B4,,",  # 6: future
        "http://bad.example/w,,B5,nothex,",  # 7: sha
        "http://bad.example/v,,B6,,no-such-hoster",  # 8: hoster
        "http://user:pw@bad.example/,,B7,,",  # 9: user info
        "http://bad.example/too,many,fields,here,x,y",  # 10: field count
        "http://ok.example/2,,OK2,,",  # 11
    ]
    summary, err = run_import(tmp_path, HEADER + "\n".join(rows) + "\n", capsys=capsys)
    assert summary["imported"] == 2
    assert summary["rejected"] == 8
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"line {n}" for n in range(3, 11)]
    assert "only http and https" in lines[0]
    assert "not an ISO 8601" in lines[1]
    assert "UTC offset" in lines[2]
    assert "in the future" in lines[3]
    assert "64 hexadecimal" in lines[4]
    assert "no hoster with slug 'no-such-hoster'" in lines[5]
    assert "user info" in lines[6]
    assert "has 6 fields, the header has 5" in lines[7]


def test_reimport_is_idempotent(db, tmp_path, capsys):
    text = HEADER + "http://a.example/1,,R1,,\nhttp://a.example/2,,R2,,\n"
    first, _ = run_import(tmp_path, text, capsys=capsys)
    again, _ = run_import(tmp_path, text, capsys=capsys)
    assert first["imported"] == 2
    assert again == {"imported": 0, "duplicates": 2, "rejected": 0, "repeats": 0}
    assert Notice.objects.count() == 2


def test_same_reference_from_another_source_is_not_a_duplicate(db, tmp_path, capsys):
    run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", "--source", "hotline-a", capsys=capsys)
    summary, _ = run_import(tmp_path, HEADER + "http://a.example/9,,R1,,\n", "--source", "hotline-b", capsys=capsys)
    assert summary["imported"] == 1


def test_a_reference_twice_in_one_file_is_a_duplicate(db, tmp_path, capsys):
    summary, _ = run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\nhttp://a.example/2,,R1,,\n", capsys=capsys)
    assert summary == {"imported": 1, "duplicates": 1, "rejected": 0, "repeats": 0}


def test_the_same_url_while_open_is_a_repeat_not_a_second_measurement(db, tmp_path, capsys):
    run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", capsys=capsys)
    summary, _ = run_import(
        tmp_path, HEADER + "HTTP://A.EXAMPLE:80/1#x,,R2,,\nhttp://a.example/1,,R3,,\n", capsys=capsys
    )
    assert summary == {"imported": 2, "duplicates": 0, "rejected": 0, "repeats": 2}
    original = Notice.objects.get(reference="R1")
    repeats = Notice.objects.filter(repeat_of=original)
    assert {n.reference for n in repeats} == {"R2", "R3"}
    assert all(n.status == "repeat" and n.next_check_at is None for n in repeats)
    assert Notice.objects.filter(status__in=Notice.OPEN_STATUSES).count() == 1


def test_a_url_whose_notice_was_closed_gets_a_new_measurement(db, tmp_path, capsys):
    run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", capsys=capsys)
    Notice.objects.filter(reference="R1").update(status="removed")
    summary, _ = run_import(tmp_path, HEADER + "http://a.example/1,,R2,,\n", capsys=capsys)
    assert summary["repeats"] == 0
    assert Notice.objects.get(reference="R2").repeat_of is None


def test_strict_imports_nothing_if_any_row_is_bad(db, tmp_path, capsys):
    path = tmp_path / "n.csv"
    path.write_text(HEADER + "http://a.example/1,,R1,,\nftp://x.example/,,R2,,\n")
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_notices", str(path), "--strict")
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert "line 3" in err
    assert json.loads(out.strip().splitlines()[-1])["imported"] == 0
    assert Notice.objects.count() == 0


def test_strict_imports_everything_when_all_rows_are_good(db, tmp_path, capsys):
    summary, _ = run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", "--strict", capsys=capsys)
    assert summary["imported"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("link,reference\nhttp://a.example/,R\n", "missing column(s) url"),
        ("url,notifed_at\nhttp://a.example/,x\n", "unknown column(s) 'notifed_at'"),
        ("url,url\nhttp://a.example/,x\n", "repeated column(s) url"),
    ],
)
def test_a_wrong_header_is_a_clear_error(db, tmp_path, content, message):
    path = tmp_path / "n.csv"
    path.write_text(content)
    with pytest.raises(CommandError) as excinfo:
        call_command("import_notices", str(path))
    assert message in str(excinfo.value)


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_notices", str(tmp_path / "missing.csv"))


def test_a_file_that_is_not_utf8_is_a_clear_error(db, tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes("url,référence\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_notices", str(path))


def test_a_row_with_invalid_utf8_is_rejected_and_the_others_imported(db, tmp_path, capsys):
    path = tmp_path / "n.csv"
    path.write_bytes(b"url,reference\nhttp://a.example/1,R1\nhttp://a.example/\xff,R2\nhttp://a.example/3,R3\n")
    call_command("import_notices", str(path))
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["imported"] == 2
    assert "line 3: is not valid UTF-8" in err


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(db, tmp_path, capsys):
    path = tmp_path / "n.csv"
    path.write_bytes("\ufeffurl,reference\r\nhttp://a.example/1,R1\r\n".encode())
    call_command("import_notices", str(path))
    out, _ = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["imported"] == 1


def test_a_notice_may_carry_a_shorter_deadline(db, tmp_path, capsys):
    path = tmp_path / "n.csv"
    path.write_text("url,notified_at,deadline_s\nhttp://a.example/1,2026-01-05T10:00:00+00:00,3600\n")
    call_command("import_notices", str(path))
    notice = Notice.objects.get()
    assert notice.deadline_s == 3600
    assert notice.deadline_at == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_the_command_prints_no_progress_bar_when_output_is_not_a_tty(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text(HEADER + "http://a.example/1,,R1,,\n")
    db_path = tmp_path / "cli.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "x" * 50, "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, env=env)
    result = subprocess.run(
        [sys.executable, "manage.py", "import_notices", str(path)], capture_output=True, text=True, env=env, check=True
    )
    assert result.stderr == ""
    assert json.loads(result.stdout.strip().splitlines()[-1])["imported"] == 1


# --- An import never loses good rows for a bad one -----------------------------------------------

FULL_HEADER = "url,notified_at,reference,content_sha256,hoster,deadline_s,regime\n"


def mixed_file() -> tuple[bytes, list[str], dict[int, str]]:
    """Good rows between about thirty kinds of bad ones: (file bytes, good references, bad line -> reason)."""
    good, bad, lines = [], {}, [FULL_HEADER.encode()]

    def add(text: str | bytes, reason: str | None = None, ref: str | None = None):
        lines.append(text if isinstance(text, bytes) else (text + "\n").encode())
        line = len(lines)
        if reason:
            bad[line] = reason
        elif ref:
            good.append(ref)

    add("http://good.example/1,2026-01-05T10:00:00+01:00,G1,,prompt,,", ref="G1")
    add("http://bad.example/1,,B1,,,99999999999999999999,", "deadline_s must lie between")
    add("http://bad.example/2,,B2,,,3000000000,", "deadline_s must lie between")
    add("http://good.example/2,2000-01-01T00:00:00Z,G2,,,31536000,order", ref="G2")
    add("http://bad.example/3,0001-01-01T00:00:00+05:00,B3,,,,", "before 2000-01-01")
    add(b"http://bad.example/4,,B4\x00x,,,,\n", "reference contains a NUL character")
    add("http://good.example/3,,G3,,,1,covenant", ref="G3")
    add("http://bad.example/5,,B5,,,0,", "deadline_s must lie between")
    add("http://bad.example/6,,B6,,,soon,", "whole number of seconds")
    add("http://bad.example/7,9999-12-31T23:59:59-05:00,B7,,,,", "in the future")
    add("http://bad.example/8,2026-01-05T10:00:00+25:00,B8,,,,", "not an ISO 8601")
    add("http://bad.example/9,2026-01-05 10:00,B9,,,,", "UTC offset")
    add("ftp://bad.example/10,,B10,,,,", "only http and https")
    add("http://u:p@bad.example/11,,B11,,,,", "user info")
    add("http://bad.example/" + "x" * 2100 + ",,B12,,,,", "longer than 2,048")
    add(",,B13,,,,", "the URL is empty")
    add("http://bad.example/14,,B14,abc,,,", "64 hexadecimal")
    add("http://bad.example/15,,B15,,nobody,,", "no hoster with slug 'nobody'")
    add("http://bad.example/16,,B16,,,,treaty", "regime must be one of")
    add("http://bad.example/17,," + "r" * 201 + ",,,,", "longer than 200")
    add("http://bad.example/18,,B18,,,,,extra", "has 8 fields, the header has 7")
    add(b"http://bad.example/19,,B19\xe9,,,,\n", "is not valid UTF-8 text (byte 0xE9")
    add("http://good.example/4,,G4,,,,", ref="G4")
    add("http://good.example/5,,G1,,,,", "duplicate reference 'G1'")  # G1 again
    add('"http://bad.example/20,,B20,,,,', 'a quote (") opens a field that is not closed on this line')
    add("http://good.example/6,,G6,,,,", ref="G6")  # a stray quote must not swallow the next lines
    add("http://good.example/7,,G7,,,,", ref="G7")
    add("http://good.example/8,,G8,,,,", ref="G8")
    add("http://good.example/9,,G9,,,,", ref="G9")
    add("http://good.example/10,,G10,,,,", ref="G10")
    add("http://bad.example/21,,B21,,,-5,", "deadline_s must lie between")
    add("http://bad.example/22,,B22,,,31536001,", "deadline_s must lie between")
    add("http://bad.example/ 23,,B23,,,,", "white space")
    add("http://bad.example/24,1969-12-31T23:59:59Z,B24,,,,", "before 2000-01-01")
    add("http://bad.example/26,2026-01-05T10:00:00+23:30,B26,,,,", "beyond ±14:00")  # lost the batch on PostgreSQL
    add("http://good.example/11," + "," + "R" * 200 + ",,,,", ref="R" * 200)
    add('http://bad.example/25,"2026-01-05T10:00:00+00:00,B25,,,,', 'a quote (") opens a field')
    add("http://good.example/12,,G12,,,,", ref="G12")
    return b"".join(lines), good, bad


@pytest.mark.parametrize("batch_size", [3, 2000])
def test_every_good_row_is_imported_and_every_bad_one_reported_at_its_line(
    tmp_path, capsys, monkeypatch, prompt_hoster, batch_size
):
    from compliance.management.commands import import_notices

    monkeypatch.setattr(import_notices, "BATCH_SIZE", batch_size)
    text, good, bad = mixed_file()
    path = tmp_path / "mixed.csv"
    path.write_bytes(text)
    call_command("import_notices", str(path))
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"imported": len(good), "duplicates": 1, "rejected": len(bad) - 1, "repeats": 0}
    assert sorted(Notice.objects.values_list("reference", flat=True)) == sorted(good)
    reported = err.strip().splitlines()
    assert [int(line.split(":")[0].removeprefix("line ")) for line in reported] == sorted(bad)  # file order
    for line, message in zip(sorted(bad), reported, strict=True):
        assert bad[line] in message, (line, message)
    assert "Traceback" not in err


def test_strict_imports_nothing_from_a_file_with_any_bad_kind(tmp_path, capsys, prompt_hoster):
    text, _good, bad = mixed_file()
    path = tmp_path / "mixed.csv"
    path.write_bytes(text)
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_notices", str(path), "--strict")
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1]) == {
        "imported": 0,
        "duplicates": 0,
        "rejected": len(bad) - 1,
        "repeats": 0,
    }
    assert Notice.objects.count() == 0


def test_duplicates_are_reported_by_line_in_the_file_and_against_earlier_imports(db, tmp_path, capsys):
    run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", capsys=capsys)
    summary, err = run_import(
        tmp_path,
        HEADER + "http://a.example/2,,R1,,\nhttp://a.example/3,,R2,,\nhttp://a.example/4,,R2,,\n",
        capsys=capsys,
    )
    assert summary == {"imported": 1, "duplicates": 2, "rejected": 0, "repeats": 0}
    assert err.splitlines() == [
        "line 2: duplicate reference 'R1' (already in source 'import'); skipped",
        "line 4: duplicate reference 'R2' (as on line 3); skipped",
    ]


@pytest.mark.parametrize(
    ("encoding", "bom", "message"),
    [
        ("utf-16-le", b"", "looks like UTF-16 little-endian text without a byte order mark"),
        ("utf-16-be", b"", "looks like UTF-16 big-endian text without a byte order mark"),
        ("utf-16-le", b"\xff\xfe", "is UTF-16 little-endian text"),
        ("utf-16-be", b"\xfe\xff", "is UTF-16 big-endian text"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "is UTF-32 text"),
    ],
)
def test_a_file_in_another_encoding_is_named_as_such(db, tmp_path, encoding, bom, message):
    path = tmp_path / "n.csv"
    path.write_bytes(bom + (HEADER + "http://a.example/1,,R1,,\n").encode(encoding))
    with pytest.raises(CommandError) as excinfo:
        call_command("import_notices", str(path))
    assert message in str(excinfo.value) and "save it as UTF-8" in str(excinfo.value)
    assert excinfo.value.returncode == 2


def test_a_latin1_file_is_named_with_the_byte_that_is_not_utf8(db, tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes("url,référence\n".encode("latin-1"))
    with pytest.raises(CommandError, match="byte 0xE9 is not UTF-8; a Latin-1 or Windows-1252 file"):
        call_command("import_notices", str(path))


@pytest.mark.parametrize(("source", "message"), [("s" * 101, "longer than 100"), ("", "must not be empty")])
def test_a_bad_source_is_a_clean_error(db, tmp_path, source, message):
    path = tmp_path / "n.csv"
    path.write_text(HEADER + "http://a.example/1,,R1,,\n")
    with pytest.raises(CommandError, match=message) as excinfo:
        call_command("import_notices", str(path), "--source", source)
    assert excinfo.value.returncode == 2
    assert Notice.objects.count() == 0


def test_a_source_of_100_characters_is_accepted(db, tmp_path, capsys):
    summary, _ = run_import(tmp_path, HEADER + "http://a.example/1,,R1,,\n", "--source", "s" * 100, capsys=capsys)
    assert summary["imported"] == 1
    assert Notice.objects.get().source == "s" * 100


def test_a_row_that_fails_at_write_time_is_refused_and_the_rest_of_its_batch_written(db, settings):
    """A row built by other code than notice_input_parse, with a deadline no database column
    holds: the batch's statement fails, the rows are written one by one, only it is refused."""
    from compliance import services

    settings.NOTIFY_BY_EMAIL = True  # no notified_at: the deadline is not added to a date before the insert
    now = datetime.now(UTC)

    def row(i, ref):
        return services.notice_input_parse(url=f"http://a.example/{i}", reference=ref, now=now)

    services.notice_import_batch(rows=[row(9, "R9")], source="import", now=now)
    rows = [row(0, "R0"), row(1, "R1"), row(2, "R2"), row(3, "R3"), row(4, "R2"), row(5, "R0"), row(6, "R9")]
    rows[2] = services.NoticeInput(url=rows[2].url, reference="R2", deadline_s=2**63)
    result = services.notice_import_batch(rows=rows, source="import", now=now)
    [(index, reason)] = result.rejected_rows
    assert index == 2 and reason.startswith("could not be stored: ")
    # Row 4 repeats row 2's reference: with row 2 refused, it is imported in its place.
    assert result.imported == 4 and result.duplicate_rows == [(5, 0), (6, None)] and result.duplicates == 2
    assert sorted(Notice.objects.values_list("url", flat=True)) == [f"http://a.example/{i}" for i in (0, 1, 3, 4, 9)]
