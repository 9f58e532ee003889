"""The shipped fixtures against the full real files in ../shared/data (real-data tests): the LiteLLM and
price-history copies are unchanged excerpts, and the made-up OpenRouter files keep the real format and
share no model with the captured ones. See tests/fixtures/README.md."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datasources.catalog.entries import OfferEntry
from datasources.catalog.litellm import parse_litellm_file
from tests.conftest import FIXTURES, SHARED_DATA
from tests.test_sources import history_slice

pytestmark = pytest.mark.real_data


def by_group(offers: list[OfferEntry]) -> dict[tuple[str, str], list[OfferEntry]]:
    groups: dict[tuple[str, str], list[OfferEntry]] = defaultdict(list)
    for offer in offers:
        groups[(offer.provider, offer.model.slug)].append(offer)
    return groups


def test_the_litellm_fixture_is_an_excerpt_of_the_real_catalog() -> None:
    name = "litellm_model_prices.json"
    excerpt, full = (json.loads((root / name).read_text()) for root in (FIXTURES, SHARED_DATA))
    assert excerpt and {key: full.get(key) for key in excerpt} == excerpt  # every entry, unchanged
    assert [key for key in full if key in excerpt] == list(excerpt)  # in the file's order
    # Whole models: each (provider, model) of the excerpt has every offer the full catalog has for it.
    mine, theirs = by_group(parse_litellm_file(FIXTURES / name)), by_group(parse_litellm_file(SHARED_DATA / name))
    assert {group: theirs[group] for group in mine} == mine


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_history_fixture_is_an_excerpt_of_the_real_history(tmp_path: Path) -> None:
    excerpt, full = rows(FIXTURES / "price_history.csv"), rows(SHARED_DATA / "price_history.csv")
    assert excerpt and list(excerpt[0]) == list(full[0])
    kept = iter(full)
    assert all(any(row == other for other in kept) for row in excerpt)  # unchanged rows, in the file's order
    # The replay tests' slice is the same taken from either file.
    slices = []
    for root in (FIXTURES, SHARED_DATA):
        (tmp_path / root.name).mkdir()
        slices.append(history_slice(tmp_path / root.name, root / "price_history.csv").read_text())
    assert slices[0] == slices[1]


def field_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path in a JSON value (list items share their list's path)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{prefix}.{key}"
            yield from field_paths(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from field_paths(item, f"{prefix}[]")


def model_ids(path: Path) -> tuple[Any, set[str]]:
    data = json.loads(path.read_text())
    return data, {model["id"] for model in data["data"]}


def record_ids(path: Path) -> tuple[Any, set[str]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records, {record["model_slug"] for record in records}


@pytest.mark.parametrize(
    ("name", "load"),
    [
        pytest.param("openrouter_models.json", model_ids, id="models"),
        pytest.param("openrouter_endpoints_sample.jsonl", record_ids, id="endpoints"),
    ],
)
def test_the_made_up_openrouter_files_keep_the_real_format(name: str, load: Any) -> None:
    (made_up, made_up_ids), (real, real_ids) = load(FIXTURES / name), load(SHARED_DATA / name)
    assert set(field_paths(made_up)) <= set(field_paths(real))  # only field names the real files use
    assert made_up_ids and not made_up_ids & real_ids  # and none of their models
