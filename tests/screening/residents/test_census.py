"""The census import's machinery, without HTTP: cutting the file, the worker process,
and the pacing."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screening.errors import UnreadableFile
from screening.residents import census
from screening.residents.census import IMPORT_BATCH, Pacer, exit_when_orphaned, import_census
from screening.residents.census_csv import (
    MAX_RECORD_BYTES,
    CensusFile,
    detect_encoding,
    parse_chunk,
)


class TestTheWorkerProcessEndsWithTheService:
    def test_the_watch_leaves_once_the_parent_is_gone(self):
        parents = iter([41, 41, 41, 1])
        sleeps: list[float] = []
        left: list[int] = []
        exit_when_orphaned(
            41, every=0.5, getppid=lambda: next(parents), sleep=sleeps.append, leave=left.append
        )
        assert (sleeps, left) == ([0.5, 0.5, 0.5], [0])

    def test_a_killed_service_leaves_no_worker_behind(self, tmp_path):
        # the service dies the way uvicorn ends it: by a signal, so no exit hook runs
        said = tmp_path / "worker.pid"
        script = (
            "import os, pathlib, signal, sys\n"
            "from screening.residents import census\n"
            "pid = census._worker_pool().submit(os.getpid).result()\n"
            "pathlib.Path(sys.argv[1]).write_text(str(pid))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        subprocess.run([sys.executable, "-c", script, str(said)], timeout=120)
        worker = int(said.read_text())
        deadline = time.monotonic() + 60  # a bound on waiting, not a measured figure
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphaned = _alive(worker)
        if orphaned:
            os.kill(worker, signal.SIGKILL)
        assert not orphaned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper has ended too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class TestThePacer:
    async def test_it_rests_three_times_as_long_as_a_batch_took_at_a_quarter(self):
        now = [100.0]
        rests: list[float] = []

        async def sleep(seconds: float) -> None:
            rests.append(seconds)
            now[0] += seconds

        pacer = Pacer(0.25, clock=lambda: now[0], sleep=sleep)
        for took in (0.1, 0.02):
            now[0] += took
            await pacer.rest()
        assert rests == pytest.approx([0.3, 0.06])
        assert pacer.rested == pytest.approx(0.36)

    async def test_at_full_duty_it_never_rests(self):
        async def sleep(seconds: float) -> None:
            raise AssertionError("rested")

        pacer = Pacer(1.0, sleep=sleep)
        await pacer.rest()
        assert pacer.rested == 0

    @pytest.mark.parametrize("duty", [0, -0.5, 1.5])
    def test_a_duty_outside_zero_to_one_is_refused(self, duty):
        with pytest.raises(ValueError):
            Pacer(duty)


class TestAnImportRestsBetweenBatches:
    async def test_a_paced_import_rests_after_every_batch_but_the_last(
        self, app, scene, db_session
    ):
        rests: list[float] = []

        async def sleep(seconds: float) -> None:
            rests.append(seconds)

        lines = "".join(f"other,R{i:06d},居民{i},,D1\n" for i in range(2 * IMPORT_BATCH + 10))
        raw = io.BytesIO(("id_type,id_number,name,phone,district\n" + lines).encode())
        tally = await import_census(db_session, app.state.vault, raw, duty=0.5, sleep=sleep)
        assert tally.created == 2 * IMPORT_BATCH + 10
        assert len(rests) == 2 and all(rest > 0 for rest in rests)

    async def test_a_paced_import_checks_the_next_batch_while_it_rests_not_while_it_stores(
        self, app, scene, db_session, monkeypatch
    ):
        """The check of a batch (the worker's core) never runs while PostgreSQL stores
        the one before (another core): the import holds one core at a time."""
        events: list[str] = []
        real_check, real_store = census.check_chunk, census.store_columns

        def check(*args: Any) -> Any:
            events.append("check")
            checked = real_check(*args)
            events.append("checked")
            return checked

        async def store(*args: Any) -> Any:
            events.append("store")
            stored = await real_store(*args)
            events.append("stored")
            return stored

        async def rest(seconds: float) -> None:
            await asyncio.sleep(0.05)  # the next batch's check runs meanwhile

        monkeypatch.setattr(census, "check_chunk", check)
        monkeypatch.setattr(census, "store_columns", store)
        lines = "".join(f"other,S{i:06d},居民{i},,D1\n" for i in range(2 * IMPORT_BATCH + 10))
        raw = io.BytesIO(("id_type,id_number,name,phone,district\n" + lines).encode())
        tally = await import_census(db_session, app.state.vault, raw, duty=0.5, sleep=rest)
        assert tally.created == 2 * IMPORT_BATCH + 10
        assert events.count("check") == events.count("store") == 3
        stores = [i for i, event in enumerate(events) if event == "store"]
        assert all(events[i + 1] == "stored" for i in stores), events

    async def test_a_full_speed_import_never_rests(self, app, scene, db_session):
        async def sleep(seconds: float) -> None:
            raise AssertionError("rested")

        lines = "".join(f"other,F{i:06d},居民{i},,D1\n" for i in range(IMPORT_BATCH + 10))
        raw = io.BytesIO(("id_type,id_number,name,phone,district\n" + lines).encode())
        tally = await import_census(db_session, app.state.vault, raw, duty=1.0, sleep=sleep)
        assert tally.created == IMPORT_BATCH + 10


def read_whole(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """The lines as the csv module reads the file in one go (what cutting must keep)."""
    encoding = detect_encoding(io.BytesIO(data))
    text = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace", newline="")
    reader = csv.reader(text)
    header = [h.strip().lower() for h in next(reader)]
    index = {name: header.index(name) for name in COLUMNS}
    rows = []
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append(
                (
                    reader.line_num,
                    {n: row[i].strip() if i < len(row) else "" for n, i in index.items()},
                )
            )
    return rows


def read_in_chunks(data: bytes, lines: int, read_bytes: int) -> list[tuple[int, dict[str, str]]]:
    census = CensusFile(io.BytesIO(data), read_bytes=read_bytes)
    rows = []
    while (chunk := census.next_chunk(lines)) is not None:
        rows.extend(parse_chunk(chunk, census.layout))
    return rows


COLUMNS = (
    "id_type",
    "id_number",
    "name",
    "district",
    "phone",
    "nationality",
    "community",
    "address",
)
cell = st.text(alphabet=st.sampled_from(list('ab 中"",\r\n')), max_size=6)
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def census_text(draw: st.DrawFn) -> str:
    """A header, then lines of up to nine cells, quoted or not, with quotes, commas and
    line ends inside, blank lines, any of the three line ends, maybe no last one."""
    out = [",".join(COLUMNS) + draw(line_end)]
    for _ in range(draw(st.integers(0, 12))):
        cells = []
        for value in draw(st.lists(cell, max_size=9)):
            if draw(st.booleans()):
                cells.append('"' + value.replace('"', '""') + '"')
            else:
                cells.append(value.replace("\r", "").replace("\n", ""))
        out.append(",".join(cells) + draw(line_end))
    text = "".join(out)
    return text.rstrip("\r\n") if draw(st.booleans()) else text


class TestCuttingTheFileKeepsEveryLine:
    @settings(max_examples=400, deadline=None)
    @given(
        text=census_text(),
        encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
        lines=st.integers(1, 5),
        read_bytes=st.integers(1, 40),
    )
    def test_chunks_read_as_the_whole_file_does(self, text, encoding, lines, read_bytes):
        data = text.encode(encoding)
        assert read_in_chunks(data, lines, read_bytes) == read_whole(data)

    def test_a_quoted_field_over_two_lines_moves_the_numbers_after_it(self):
        data = b'id_type,id_number,name,district\nother,A1,"two\nlines",D1\n\nother,A2,B,D1\n'
        rows = read_in_chunks(data, 1, 4)
        assert [(line, row["name"]) for line, row in rows] == [(3, "two\nlines"), (5, "B")]

    def test_an_unclosed_quote_is_named_by_its_line(self):
        data = b'id_type,id_number,name,district\nother,A1,X,D1\nother,A2,"open' + b"x" * (
            MAX_RECORD_BYTES + 10
        )
        census = CensusFile(io.BytesIO(data))
        with pytest.raises(UnreadableFile, match=r"^line 3: "):
            while census.next_chunk(1) is not None:
                pass
