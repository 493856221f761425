"""Manifests as call centers make them: Excel's plain "CSV" on a Chinese Windows writes GB18030 (no
BOM, CRLF), "CSV UTF-8" writes a BOM.  Both are read; a UTF-8 file with a stray byte, or bytes that
are no text, is one error naming the fix, never a file read as gibberish."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pipelines.shell.sources import read_source

ROWS = "call_id,path,agent_id,team\r\n投诉_001,录音/投诉一.wav,工号001,投诉组\r\nc2,b.wav,A2,售后组\r\n"


def _manifest(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "night.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8-sig", "utf-8"])
def test_excel_manifests_are_read_with_their_chinese_names(tmp_path, caplog, encoding):
    manifest = _manifest(tmp_path, ROWS.encode(encoding))
    with caplog.at_level(logging.WARNING, logger="pipelines.shell.sources"):
        found = read_source(manifest)
    assert [(c.call_id, c.agent_id, c.team) for c in found.calls] == [("投诉_001", "工号001", "投诉组"), ("c2", "A2", "售后组")]
    assert found.calls[0].path == tmp_path / "录音" / "投诉一.wav"
    warned = [r.getMessage() for r in caplog.records if "GB18030" in r.getMessage()]
    assert bool(warned) == encoding.startswith("gb"), warned


def test_utf8_with_a_stray_byte_is_an_error_to_fix_not_gibberish(tmp_path):
    data = ROWS.encode("utf-8").replace("售后组".encode("utf-8"), b"\xff\xe5\x94\xae")
    with pytest.raises(ValueError) as refused:
        read_source(_manifest(tmp_path, data))
    message = str(refused.value)
    assert "cannot be read as a UTF-8 (or GB18030) CSV" in message and 'save it from Excel as "CSV UTF-8"' in message


def test_bytes_that_are_no_text_are_refused_with_the_fix(tmp_path):
    data = b"call_id,path\n" + bytes(range(0x80, 0x100)) * 4 + os.urandom(64).replace(b"\x00", b"")
    with pytest.raises(ValueError, match="cannot be read as a UTF-8 \\(or GB18030\\) CSV"):
        read_source(_manifest(tmp_path, data))


def test_a_field_past_the_csv_limit_is_an_error_with_the_file_named(tmp_path):
    with pytest.raises(ValueError, match="night.csv: cannot be read as a CSV \\(field larger than field limit"):
        read_source(_manifest(tmp_path, b'call_id,path\nc1,"' + b"a" * 200_000 + b'.wav"\n'))
