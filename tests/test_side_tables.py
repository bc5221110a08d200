"""Side tables (hospitals, quality scores, seasonality): CSV in UTF-8 or GB18030, or Parquet; a clear error when
the file is absent."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dipsim.io.errors import InputError
from dipsim.io.readers import read_table_file

ROWS = "hospital_id,name,level\nH1,北京市第一医院,3\nH2,中医院,2\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_a_hospitals_csv_in_any_of_the_users_encodings(tmp_path, encoding):
    path = tmp_path / "hospitals.csv"
    path.write_bytes(ROWS.encode(encoding))
    table = read_table_file(path, "hospitals table")
    assert table.column_names == ["hospital_id", "name", "level"]
    assert table["name"].to_pylist() == ["北京市第一医院", "中医院"]
    assert table["level"].to_pylist() == [3, 2]


def test_parquet_by_its_suffix(tmp_path):
    path = tmp_path / "hospitals.parquet"
    pq.write_table(pa.table({"hospital_id": ["H1"], "level": [3]}), path)
    assert read_table_file(path).to_pylist() == [{"hospital_id": "H1", "level": 3}]


def test_an_absent_file_names_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="no quality scores table file"):
        read_table_file(tmp_path / "missing.csv", "quality scores table")
