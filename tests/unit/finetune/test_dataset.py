"""Dataset checks: every bad dataset is rejected with a message saying what is wrong."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.compute.spec.dataset import (
    DatasetOverQuota,
    DatasetQuota,
    Example,
    InvalidDataset,
    encode_dataset,
    parse_dataset,
    validate_token_count,
)


def test_jsonl_and_json_array_give_the_same_examples() -> None:
    rows = [{"prompt": "Q: 2+2?\nA:", "completion": " 4"}, {"text": "Zebras are striped."}]
    jsonl = "\n".join(json.dumps(r) for r in rows).encode()
    array = json.dumps(rows).encode()
    expected = (Example("Q: 2+2?\nA:", " 4"), Example("", "Zebras are striped."))
    assert parse_dataset(jsonl) == expected
    assert parse_dataset(array) == expected


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"[]"])
def test_bad_dataset_empty_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidDataset, match="empty"):
        parse_dataset(data)


def test_bad_dataset_invalid_jsonl_names_the_line() -> None:
    with pytest.raises(InvalidDataset, match="line 2 is not valid JSON"):
        parse_dataset(b'{"text": "ok"}\n{"text": oops}\n')


def test_bad_dataset_invalid_json_array_is_rejected() -> None:
    with pytest.raises(InvalidDataset, match="not valid JSON"):
        parse_dataset(b'[{"text": "ok"},')


def test_bad_dataset_not_utf8_is_rejected() -> None:
    with pytest.raises(InvalidDataset, match="not UTF-8"):
        parse_dataset(b'{"text": "\xff"}')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"42", "must be a JSON object"),
        (b'{"question": "x"}', "unexpected keys"),
        (b'{"text": 7}', "must be a string"),
        (b'{"prompt": "x", "completion": "  "}', "empty"),
    ],
)
def test_bad_dataset_wrong_example_shape_is_rejected(line: bytes, message: str) -> None:
    with pytest.raises(InvalidDataset, match=message):
        parse_dataset(line)


def test_bad_dataset_over_quota_bytes_examples_and_tokens() -> None:
    data = b'{"text": "hello"}\n' * 10
    with pytest.raises(DatasetOverQuota, match="over the quota of 100 bytes"):
        parse_dataset(data, DatasetQuota(max_bytes=100))
    with pytest.raises(DatasetOverQuota, match="10 examples, over the quota of 5"):
        parse_dataset(data, DatasetQuota(max_examples=5))
    with pytest.raises(DatasetOverQuota, match="tokens"):
        validate_token_count(1001, DatasetQuota(max_tokens=1000))
    validate_token_count(1000, DatasetQuota(max_tokens=1000))


texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
examples = st.lists(
    st.builds(Example, prompt=st.one_of(st.just(""), texts), completion=texts),
    min_size=1,
    max_size=8,
)


@given(examples)
def test_encoded_dataset_parses_back_to_the_same_examples(values: list[Example]) -> None:
    assert parse_dataset(encode_dataset(tuple(values))) == tuple(values)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_invalid_dataset(data: bytes) -> None:
    try:
        result = parse_dataset(data)
    except InvalidDataset as exc:
        assert str(exc)
    else:
        assert len(result) >= 1


@given(st.integers(0, 2**72), st.integers(1, 2**40))
def test_a_dataset_size_is_refused_exactly_when_over_the_byte_quota(size: int, max_bytes: int) -> None:
    from zgos.compute.spec.dataset import validate_dataset_size

    if size > max_bytes:
        with pytest.raises(DatasetOverQuota, match=f"{size} bytes, over the quota of {max_bytes}"):
            validate_dataset_size(size, DatasetQuota(max_bytes=max_bytes))
    else:
        validate_dataset_size(size, DatasetQuota(max_bytes=max_bytes))
