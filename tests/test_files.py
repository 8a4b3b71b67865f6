"""Output files are written the way the path asks: atomically over a regular file, straight
through a FIFO, a device or a symlink's target, never replacing what the path names."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from shadowdiff.report.files import read_file_bounded, write_text_file

from .test_cli import shadowdiff


def test_a_regular_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    write_text_file(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_symlink_stays_a_symlink_and_its_target_gets_the_text(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_file(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_text_file(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_directory_that_cannot_be_written_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_text_file(tmp_path / "missing" / "report.json", "x")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
async def test_a_full_disk_is_a_one_line_error_naming_the_flag_and_dev_full_stays_a_device(
    tmp_path: Path,
) -> None:
    code, stdout, stderr = await shadowdiff("demo", "--markdown", "/dev/full")
    assert code == 2, stdout + stderr
    assert "--markdown /dev/full: cannot write: No space left on device" in stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize(
    "command",
    [["report"], ["merge"], ["compare-runs", "/dev/zero"]],
    ids=["report", "merge", "compare-runs"],
)
async def test_a_report_that_never_ends_is_refused_before_it_is_read(command: list[str]) -> None:
    code, stdout, stderr = await shadowdiff(*command, "/dev/zero")
    assert code == 2, stdout + stderr
    assert "/dev/zero: not a regular file" in stderr


def test_a_file_past_the_bound_is_refused_by_name(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 * 2**20 + 1))
    with pytest.raises(Exception, match=r"big.json: larger than 2 MiB: not a report"):
        read_file_bounded(big, 2 * 2**20, "a report")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
async def test_a_pairs_file_that_cannot_be_written_is_one_line_before_anything_is_sent() -> None:
    code, stdout, stderr = await shadowdiff("demo", "--pairs", "/dev/full")
    assert code == 2, stdout + stderr
    assert "--pairs /dev/full: cannot write: No space left on device" in stderr
