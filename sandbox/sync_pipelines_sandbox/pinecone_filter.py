"""Pinecone's metadata filter language, evaluated against one vector's metadata.

Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or, and `{"field": value}` for
equality. A list-valued field (list of strings) matches $eq/$in when any element does and
$ne/$nin when none does; a missing field fails every test except $ne, $nin and $exists: false.
"""

from __future__ import annotations

from typing import Any

_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists", *_COMPARE}


class FilterError(ValueError):
    """The filter is not valid Pinecone syntax; the emulator answers 400."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality without Python's True == 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def validate(flt: Any) -> None:
    if not isinstance(flt, dict):
        raise FilterError("filter must be a JSON object")
    for key, value in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty array of filters")
            for sub in value:
                validate(sub)
        elif key.startswith("$"):
            raise FilterError(f"unsupported top-level operator {key}")
        elif isinstance(value, dict):
            for op, operand in value.items():
                _validate_operator(key, op, operand)
        else:
            _validate_operator(key, "$eq", value)


def _validate_operator(field: str, op: str, operand: Any) -> None:
    if op not in FIELD_OPERATORS:
        raise FilterError(f"unsupported operator {op} on field {field}")
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not all(
            isinstance(v, (str, int, float)) for v in operand
        ):
            raise FilterError(
                f"{op} on field {field} takes an array of strings, numbers or booleans"
            )
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"$exists on field {field} takes a boolean")
    elif op in _COMPARE:
        if not _number(operand):
            raise FilterError(f"{op} on field {field} takes a number")
    elif not isinstance(operand, (str, int, float)):
        raise FilterError(f"{op} on field {field} takes a string, number or boolean")


def matches(flt: dict, metadata: dict) -> bool:
    """True if `metadata` satisfies `flt` (already validated)."""
    for key, value in flt.items():
        if key == "$and":
            if not all(matches(sub, metadata) for sub in value):
                return False
        elif key == "$or":
            if not any(matches(sub, metadata) for sub in value):
                return False
        else:
            ops = value if isinstance(value, dict) else {"$eq": value}
            if not all(
                _test(op, operand, key in metadata, metadata.get(key))
                for op, operand in ops.items()
            ):
                return False
    return True


def _test(op: str, operand: Any, present: bool, value: Any) -> bool:
    if op == "$exists":
        return present == operand
    if op in ("$ne", "$nin"):
        return not _test("$eq" if op == "$ne" else "$in", operand, present, value)
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return any(_same(v, operand) for v in values)
    if op == "$in":
        return any(_same(v, o) for v in values for o in operand)
    return _number(value) and _COMPARE[op](value, operand)
