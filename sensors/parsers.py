"""Request bodies of `POST /api/v1/observations` -> a list of raw items for `observation_ingest`.

A document that cannot be read as a whole (bad encoding, broken JSON, wrong shape, missing CSV
header) is refused with 400 and nothing is stored; a readable document whose items are bad is the
ingestion service's business, item by item.
"""

from __future__ import annotations

import csv
import io
import json
import re

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from .services import ItemError, normalized_text

CSV_COLUMNS = ("station", "observed_at", "value")
# Deliberately stricter than float(): no "1_000", no surrounding words, ASCII digits only (after NFKC).
NUMBER_TEXT = re.compile(
    r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf|infinity)$", re.IGNORECASE | re.ASCII
)
MAX_NUMBER_TEXT = 64


EMPTY_BODY = 'Empty body; send {"observations": [...]} or CSV.'


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def read_limited(stream) -> bytes:
    limit = settings.INGEST_MAX_BODY_BYTES
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes; split the batch.")
    if not body:
        raise ParseError(EMPTY_BODY)
    return body


def check_batch_size(count: int) -> None:
    if count > settings.INGEST_MAX_BATCH:
        raise PayloadTooLarge(
            f"Batch has {count} observations; at most {settings.INGEST_MAX_BATCH} are accepted per request."
        )


def decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"Body is not valid UTF-8 (byte {exc.start}).") from None


def _no_duplicate_keys(pairs):
    document = dict(pairs)  # called for every item of a batch: one dict, the check is its size
    if len(document) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ParseError(f"Duplicate key(s) in one JSON object: {', '.join(map(repr, duplicated[:3]))[:200]}.")
    return document


class ObservationJSONParser(BaseParser):
    """`{"observations": [...]}`. NaN/Infinity literals are read so they can be rejected per item."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        text = decode_utf8(read_limited(stream))
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=json_integer)
        except json.JSONDecodeError as exc:
            raise ParseError(f"Malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}.") from None
        except RecursionError:
            raise ParseError("JSON is nested too deeply.") from None
        if not isinstance(document, dict):
            raise ParseError('Body must be a JSON object: {"observations": [...]}.')
        if "observations" not in document:
            raise ParseError('Body has no "observations" list.')
        observations = document["observations"]
        if not isinstance(observations, list):
            raise ParseError('"observations" must be a list.')
        check_batch_size(len(observations))
        return observations


class ObservationCSVParser(BaseParser):
    """`station,observed_at,value` with a header row; item indexes count data rows from 0."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        text = decode_utf8(read_limited(stream))
        if "\x00" in text:
            raise ParseError("CSV contains a NUL byte.")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise ParseError("CSV is empty; expected the header station,observed_at,value.")
            columns = [name.strip().lower() for name in header]
            if sorted(columns) != sorted(CSV_COLUMNS):
                raise ParseError(
                    f"CSV header must be station,observed_at,value (in any order), got {','.join(header)[:100]!r}."
                )
            positions = [columns.index(name) for name in CSV_COLUMNS]
            items: list = []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                check_batch_size(len(items) + 1)
                items.append(self._item(row, positions, reader.line_num))
        except csv.Error as exc:
            raise ParseError(f"Malformed CSV at line {reader.line_num}: {exc}.") from None
        return items

    @staticmethod
    def _item(row: list[str], positions: list[int], line: int):
        if len(row) != len(CSV_COLUMNS):
            # Carried through as the item so the service reports it at this row's index.
            return ItemError(f"line {line}: expected 3 fields, got {len(row)}")
        station, observed_at, value = (row[position].strip() for position in positions)
        return {"station": station, "observed_at": observed_at, "value": number_from_text(value)}


def number_from_text(text: str):
    """A float for numeric text after NFKC (`１.５` is 1.5; NaN/inf included, so they are rejected as
    non-finite); else the text, which the service refuses per item with the reason."""
    normalized = normalized_text(text)
    if len(normalized) <= MAX_NUMBER_TEXT and NUMBER_TEXT.match(normalized):
        return float(normalized)
    return text


def json_integer(text: str):
    """`parse_int` for json.loads: an integer literal longer than Python converts (4,300 digits) is read
    as a float, i.e. infinity, which the item's number check refuses, instead of failing the document."""
    try:
        return int(text)
    except ValueError:
        return float(text)
