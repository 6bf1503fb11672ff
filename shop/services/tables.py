"""Reading CSV and Parquet files in chunks, with one clear error for a file that is not what it claims."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CHUNK_ROWS = 200_000
PARQUET_MAGIC = b"PAR1"


class ImportFileError(Exception):
    """The file as a whole cannot be read; nothing was stored."""


@dataclass
class Table:
    path: Path
    format: str  # "csv" or "parquet"
    columns: list
    total_rows: int | None  # known up front for Parquet only

    def chunks(self, columns):
        """Yield (first_line, DataFrame) pairs; line 1 is the CSV header, so data starts at line 2.

        CSV values are read as text, exactly as written, and parsed by the caller.
        """
        if self.format == "parquet":
            yield from self._parquet_chunks(columns)
        else:
            yield from self._csv_chunks(columns)

    def _parquet_chunks(self, columns):
        import pyarrow.parquet as pq

        line = 2
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=CHUNK_ROWS, columns=columns):
            frame = batch.to_pandas()
            yield line, frame
            line += len(frame)

    def _csv_chunks(self, columns):
        line = 2
        reader = pd.read_csv(
            self.path, usecols=columns, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS, on_bad_lines="error"
        )
        try:
            for frame in reader:
                yield line, frame
                line += len(frame)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{self.path.name}: cannot be read as CSV near line {line}: {exc}") from exc


def table_open(path):
    """Open a CSV or Parquet file and check that it is one, without reading it all."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise ImportFileError(f"{path.name}: the file is empty.")
    with path.open("rb") as handle:
        head = handle.read(65536)
    if head.startswith(PARQUET_MAGIC):
        return _open_parquet(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        raise ImportFileError(f"{path.name}: not a Parquet file (it lacks the PAR1 signature).")
    return _open_csv(path, head)


def _open_parquet(path):
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ImportFileError(f"{path.name}: damaged Parquet file: {exc}") from exc
    if meta.metadata.num_rows == 0:
        raise ImportFileError(f"{path.name}: the Parquet file has no rows.")
    return Table(path, "parquet", list(meta.schema_arrow.names), meta.metadata.num_rows)


def _open_csv(path, head):
    if b"\x00" in head:
        raise ImportFileError(f"{path.name}: not a CSV file (it has binary content); expected CSV or Parquet.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is fine.
        if exc.start < len(head) - 4:
            raise ImportFileError(f"{path.name}: not UTF-8 text (byte {exc.start}); expected CSV or Parquet.") from exc
    try:
        sample = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ImportFileError(f"{path.name}: cannot be read as CSV: {exc}") from exc
    if sample.empty:
        raise ImportFileError(f"{path.name}: the CSV file has a header but no rows.")
    return Table(path, "csv", [str(c) for c in sample.columns], None)
