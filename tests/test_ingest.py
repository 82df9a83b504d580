import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm.errors import UserError
from rnnlm.ingest import ingest, require_rows
from tests.configs import ingest_config

NAMES = ingest_config()
NEWS = ingest_config(format="jsonl", normalize="news", text_fields=["short_description"],
                    category_field="category")


def write(tmp_path, data, name="raw"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def line_count(data):
    """Lines in a file as a reader sees them: a final newline does not start another line."""
    return 0 if not data else data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def assert_accounted(result):
    report = result.report("x")
    assert report["rows_read"] == report["rows_kept"] + report["rows_rejected"]
    assert sum(report["rejected_by_reason"].values()) == report["rows_rejected"]


def test_names_bom_crlf_blank_and_bad_rows(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfEmma\r\n\r\n  ava  \r\nmary-jane\r\nZo\xc3\xab\r\n\xff\xfe\r\nmia")
    result = ingest(path, NAMES)
    assert [r["text"] for r in result.rows] == ["emma", "ava", "zoe", "mia"]
    assert [r["line"] for r in result.rows] == [1, 3, 5, 7]
    assert [(r["line"], r["reason"]) for r in result.rejects] == [
        (2, "empty"), (4, "disallowed_characters"), (6, "invalid_utf8")]
    assert result.report(path)["rejected_by_reason"] == {"disallowed_characters": 1, "empty": 1, "invalid_utf8": 1}
    assert_accounted(result)


def test_missing_raw_file_names_the_fetch_command(tmp_path):
    with pytest.raises(UserError, match=r"dvc pull .*names.txt.dvc"):
        ingest(tmp_path / "names.txt", NAMES)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\r\n"])
def test_no_usable_rows_is_an_error(tmp_path, content):
    path = write(tmp_path, content)
    result = ingest(path, NAMES)
    assert_accounted(result)
    with pytest.raises(UserError, match="no usable rows"):
        require_rows(result, path, "rejects.jsonl")


def test_bad_rows_fatal_names_the_line(tmp_path):
    path = write(tmp_path, "emma\nbad!\n")
    cfg = ingest_config(bad_rows_fatal=True)
    with pytest.raises(UserError, match=r":2: disallowed_characters"):
        ingest(path, cfg)


def news_line(**fields):
    row = {"link": "l", "headline": "H", "category": "POLITICS", "short_description": "A story.",
           "authors": "", "date": "2022-09-23"}
    row.update(fields)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


def test_news_bad_rows_are_counted_with_line_numbers(tmp_path):
    lines = [
        news_line(short_description="Don't stop -- AT&T's deal!"),  # 1 kept
        '{"short_description": "truncated',                         # 2 invalid json
        "[1, 2, 3]",                                                  # 3 not an object
        news_line(short_description=...),                            # 4 missing field
        news_line(short_description=None),                           # 5 null
        news_line(short_description=42),                             # 6 wrong type
        news_line(category=None),                                    # 7 null category
        "",                                                          # 8 blank
        news_line(short_description="?!"),                           # 9 empty after normalization
        news_line(short_description="Second story"),                 # 10 kept
    ]
    result = ingest(write(tmp_path, "\n".join(lines)), NEWS)
    assert result.rows == [{"line": 1, "category": "POLITICS", "text": "don't stop at&t's deal"},
                           {"line": 10, "category": "POLITICS", "text": "second story"}]
    assert [(r["line"], r["reason"]) for r in result.rejects] == [
        (2, "invalid_json"), (3, "not_an_object"), (4, "missing_field"), (5, "null_field"), (6, "wrong_type"),
        (7, "null_field"), (8, "empty"), (9, "empty")]
    assert all(r["raw"] for r in result.rejects if r["line"] != 8)
    assert_accounted(result)


def test_news_text_fields_can_be_joined(tmp_path):
    cfg = ingest_config(format="jsonl", normalize="news", text_fields=["headline", "short_description"])
    result = ingest(write(tmp_path, news_line(headline="Big News", short_description="Details here.")), cfg)
    assert result.rows[0]["text"] == "big news details here"


def test_huge_single_line(tmp_path):
    result = ingest(write(tmp_path, "a" * 10_000_000), NAMES)
    assert len(result.rows) == 1 and len(result.rows[0]["text"]) == 10_000_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=30))
def test_names_any_bytes_every_row_accounted(tmp_path, lines):
    data = b"\n".join(lines)
    result = ingest(write(tmp_path, data, "prop.txt"), NAMES)
    assert result.rows_read == line_count(data)
    assert_accounted(result)
    lines_seen = sorted([r["line"] for r in result.rows] + [r["line"] for r in result.rejects])
    assert lines_seen == list(range(1, result.rows_read + 1))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
                           max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"short_description": json_values, "category": json_values}).map(json.dumps),
    st.text(max_size=30).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
), max_size=20))
def test_news_any_line_is_kept_or_rejected_never_crashes(tmp_path, lines):
    data = "\n".join(lines).encode("utf-8")
    result = ingest(write(tmp_path, data, "prop.json"), NEWS)
    assert result.rows_read == line_count(data)
    assert_accounted(result)
    for row in result.rows:
        assert row["text"] and isinstance(row["category"], str)


def test_duplicates_after_normalization_are_rejected_naming_the_first(tmp_path):
    """"Emma" and " emma" are one item once normalized: the first is kept, the repeat rejected with its
    line and the line it repeats; with dedupe off (the seed notebook's split) every row is kept."""
    path = write(tmp_path, "Emma\nava\n emma \nZoë\nzoe\nava\nmia\n")
    result = ingest(path, NAMES)
    assert [r["text"] for r in result.rows] == ["emma", "ava", "zoe", "mia"]
    assert [(r["line"], r["reason"], r["detail"]) for r in result.rejects] == [
        (3, "duplicate", "the same item as line 1"), (5, "duplicate", "the same item as line 4"),
        (6, "duplicate", "the same item as line 2")]
    assert result.report(path)["rejected_by_reason"] == {"duplicate": 3}
    assert_accounted(result)
    kept = ingest(path, ingest_config(dedupe=False))
    assert [r["text"] for r in kept.rows] == ["emma", "ava", "emma", "zoe", "zoe", "ava", "mia"]


def test_a_duplicate_is_not_a_bad_row(tmp_path):
    """bad_rows_fatal stops at a malformed row, not at a repeat, which is expected in real data."""
    path = write(tmp_path, "emma\nemma\nava\n")
    result = ingest(path, ingest_config(bad_rows_fatal=True))
    assert [r["text"] for r in result.rows] == ["emma", "ava"] and result.rejects[0]["reason"] == "duplicate"


def test_news_duplicates_compare_the_normalized_text_not_the_category(tmp_path):
    rows = [{"short_description": "Rain, again.", "category": "WEATHER"},
            {"short_description": "rain again", "category": "NEWS"},
            {"short_description": "Sun.", "category": "WEATHER"}]
    path = write(tmp_path, "\n".join(json.dumps(r) for r in rows))
    result = ingest(path, NEWS)
    assert [r["text"] for r in result.rows] == ["rain again", "sun"]
    assert [(r["line"], r["reason"]) for r in result.rejects] == [(2, "duplicate")]
