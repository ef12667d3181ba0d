"""The user's gene mapping files for Geneformer: gene medians, token dictionaries, id mappings.

All are two-column mappings keyed by gene id (Ensembl ids in Geneformer's own files), read by
suffix from pickle (``.pkl``/``.pickle``: a dict, as Geneformer ships them; read by a restricted
unpickler that builds plain containers, strings and numbers (NumPy scalars included) and refuses
anything else, so a crafted file cannot run code), JSON (``.json``: an object) or TSV
(``.tsv``/``.txt``/``.tab``: gene id, value; an optional header line; ``#`` comments). Every
value is checked, with one-line errors naming the file and the gene:

* gene medians (``gene id -> non-zero median``): finite numbers > 0;
* token dictionaries (``token -> id``): integers in 0 .. 2**31 - 1; besides gene ids they hold
  the special tokens ``<pad>``, ``<mask>`` and, for Geneformer V2, ``<cls>`` and ``<eos>``;
* gene id mappings (``gene id -> gene id``, Geneformer's ``ensembl_mapping_dict``, which maps
  retired and alternative Ensembl ids to the ids of the token dictionary): non-empty strings.

Gene medians keep the NumPy type they were stored in (:class:`GeneMedians`): Geneformer's own
pickles hold float32 scalars, and its tokenizer divides by a float32 array of them.

:func:`default_token_dictionary` builds a dictionary from the data's gene ids when the user
gives none. See ``docs/singlecell.md#geneformer``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...errors import InputError

__all__ = [
    "GeneMedians",
    "default_token_dictionary",
    "load_gene_mapping",
    "load_gene_medians",
    "load_token_dictionary",
]

PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"
CLS_TOKEN = "<cls>"
EOS_TOKEN = "<eos>"
INT32_MAX = 2**31 - 1

_Value = TypeVar("_Value")


# --- reading ------------------------------------------------------------------------------

#: What a mapping pickle may reference: plain containers, and NumPy scalars (Geneformer's
#: medians are float32 scalars: rebuilt from a dtype and their bytes). Nothing callable beyond.
_SAFE_GLOBALS = frozenset(
    {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "str"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("collections", "OrderedDict"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # the bytes of a NumPy scalar under pickle protocols 0-2
    }
)


class _MappingUnpickler(pickle.Unpickler):
    """An unpickler that builds only :data:`_SAFE_GLOBALS`; any other reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"it references {module}.{name}, which a mapping of gene ids never needs "
                "(refused: a pickle can run code; only dicts of strings and numbers are read)"
            )
        return super().find_class(module, name)


def _read_mapping(
    path: str | os.PathLike, what: str, value_kind: str, *, numeric: bool = True
) -> dict[str, Any]:
    """Read a two-column mapping (gene id -> value) from pickle, JSON or TSV.

    ``numeric``: the values are numbers, so a first TSV line whose value is none is a header;
    otherwise a TSV has no header line (``#`` comments only).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    if suffix in (".pkl", ".pickle"):
        try:
            with open(path, "rb") as handle:
                loaded = _MappingUnpickler(handle).load()
        except Exception as exc:
            raise InputError(
                f"{path}: cannot read the pickle ({type(exc).__name__}: {exc}); "
                f"give a pickled dict of gene id -> {value_kind}"
            ) from None
        if not isinstance(loaded, Mapping):
            raise InputError(
                f"{path}: the pickle holds a {type(loaded).__name__}, not a dict of gene id -> "
                f"{value_kind}"
            )
        return {str(k): v for k, v in loaded.items()}
    if suffix == ".json":
        try:
            loaded = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(
                f"{path}: the JSON holds a {type(loaded).__name__}, not an object of gene id -> "
                f"{value_kind}"
            )
        return loaded
    if suffix in (".tsv", ".txt", ".tab"):
        return _read_tsv(path, value_kind, header=numeric)
    raise InputError(
        f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
        "name it .pkl/.pickle, .json or .tsv"
    )


def _read_tsv(path: Path, value_kind: str, *, header: bool) -> dict[str, str]:
    """Gene id -> value text; with ``header``, a first line whose value is no number is a header."""
    mapping: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; give a two-column TSV") from None
    first_content_line = True
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2:
            raise InputError(
                f"{path}: line {number} has {len(fields)} tab-separated fields; expected 2 "
                f"(gene id, {value_kind})"
            )
        key, value = fields[0].strip(), fields[1].strip()
        is_header = header and first_content_line and not _is_number(value)
        first_content_line = False
        if is_header:
            continue
        if key in mapping:
            raise InputError(f"{path}: line {number}: gene id {key!r} appears twice")
        mapping[key] = value
    return mapping


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- checking -----------------------------------------------------------------------------


class GeneMedians(dict):
    """Gene id -> median (float), and the NumPy type the medians were stored in.

    ``dtype`` is float32 when every median was a NumPy float32 (as in Geneformer's pickles),
    else float64: Geneformer's tokenizer builds its array of medians with ``np.array`` of the
    stored values, so their type decides the precision of its last division.
    """

    dtype: np.dtype = np.dtype(np.float64)

    def __init__(self, values: Any = (), *, dtype: Any = np.float64) -> None:
        super().__init__(values)
        self.dtype = np.dtype(dtype)


def _checked_medians(raw: Mapping, source: str) -> GeneMedians:
    """``raw`` (gene id -> median) with str keys and float values, each finite and > 0."""
    stored_float32 = bool(raw) and all(isinstance(v, np.float32) for v in raw.values())
    if isinstance(raw, GeneMedians):
        stored_float32 = raw.dtype == np.float32
    medians = GeneMedians(dtype=np.float32 if stored_float32 else np.float64)
    for gene, value in raw.items():
        try:
            median = float(value)
        except (TypeError, ValueError):
            median = math.nan
        if not math.isfinite(median) or median <= 0:
            raise InputError(
                f"{source}: gene {gene!r} has median {value!r}; medians must be finite numbers > 0"
            )
        medians[str(gene)] = median
    return medians


def _checked_gene_mapping(raw: Mapping, source: str) -> dict[str, str]:
    """``raw`` (gene id -> gene id) with str keys and non-empty str values."""
    mapping: dict[str, str] = {}
    for gene, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(
                f"{source}: gene {gene!r} maps to {value!r}; a gene id mapping maps ids to "
                "non-empty gene id strings"
            )
        mapping[str(gene)] = value.strip()
    return mapping


def _checked_tokens(raw: Mapping, source: str) -> dict[str, int]:
    """``raw`` (token -> id) with str keys and int ids in 0 .. 2**31 - 1."""
    tokens: dict[str, int] = {}
    for gene, value in raw.items():
        token = _as_token_id(value)
        if token is None:
            raise InputError(
                f"{source}: token {gene!r} has id {value!r}; ids must be integers in 0..{INT32_MAX}"
            )
        tokens[str(gene)] = token
    return tokens


def _as_token_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, int | np.integer) or not 0 <= int(value) <= INT32_MAX:
        return None
    return int(value)


def _path_or_mapping(
    value: Any,
    parameter: str,
    description: str,
    load: Callable[[str | os.PathLike], dict[str, _Value]],
    check: Callable[[Mapping, str], dict[str, _Value]],
) -> dict[str, _Value]:
    """``value`` read by ``load`` when it is a path, else checked by ``check`` as a mapping."""
    if isinstance(value, str | os.PathLike):
        return load(value)
    if not isinstance(value, Mapping):
        raise InputError(
            f"`{parameter}` must be a path or a dict of {description}, not {type(value).__name__}"
        )
    return check(value, parameter)


# --- the public readers -------------------------------------------------------------------


def load_gene_medians(path: str | os.PathLike) -> GeneMedians:
    """Read gene id -> non-zero median, as Geneformer's ``gene_median_dictionary.pkl``.

    Args:
        path: pickle (``.pkl``/``.pickle``, a dict, read by a restricted unpickler), JSON
            (``.json``, an object) or TSV (``.tsv``/``.txt``/``.tab``: gene id, median; a
            header line optional), told apart by the suffix.

    Returns:
        Gene id (str) -> median (float), in the file's order, as :class:`GeneMedians`
        (``dtype`` float32 when the pickle holds NumPy float32 scalars, as Geneformer's do).

    Raises:
        InputError: the file is missing or malformed, or a median is not a finite number > 0
            (the message names the file and the gene).
    """
    return _checked_medians(_read_mapping(path, "gene median", "median"), str(path))


def load_token_dictionary(path: str | os.PathLike) -> dict[str, int]:
    """Read token -> id, as Geneformer's ``token_dictionary.pkl``.

    Besides gene ids, such a dictionary holds the special tokens ``<pad>``, ``<mask>`` and,
    for Geneformer V2, ``<cls>`` and ``<eos>``.

    Args:
        path: pickle, JSON or TSV, as for :func:`load_gene_medians`.

    Returns:
        Token (str) -> id (int), in the file's order.

    Raises:
        InputError: the file is missing or malformed, or an id is not an integer in
            0 .. 2**31 - 1 (the message names the file and the token).
    """
    return _checked_tokens(_read_mapping(path, "token dictionary", "token id"), str(path))


def as_gene_medians(gene_medians: Any) -> GeneMedians:
    """Return ``gene_medians`` (a path or a dict gene id -> median) as checked medians.

    Raises:
        InputError: not a path or a dict, or a bad median (see :func:`load_gene_medians`).
    """
    return _path_or_mapping(
        gene_medians, "gene_medians", "gene id -> median", load_gene_medians, _checked_medians
    )


def as_gene_mapping(gene_mapping: Any) -> dict[str, str]:
    """Return ``gene_mapping`` (a path or a dict gene id -> gene id) as a checked mapping.

    Raises:
        InputError: not a path or a dict, or a bad value (see :func:`load_gene_mapping`).
    """
    return _path_or_mapping(
        gene_mapping, "gene_mapping", "gene id -> gene id", load_gene_mapping, _checked_gene_mapping
    )


def as_token_dictionary(token_dictionary: Any) -> dict[str, int]:
    """Return ``token_dictionary`` (a path or a dict token -> id) as a checked dictionary.

    Raises:
        InputError: not a path or a dict, or a bad id (see :func:`load_token_dictionary`).
    """
    return _path_or_mapping(
        token_dictionary, "token_dictionary", "token -> id", load_token_dictionary, _checked_tokens
    )


def default_token_dictionary(
    gene_ids: Iterable[Any], *, special_tokens: bool = False
) -> dict[str, int]:
    """Build a token dictionary for the given genes.

    Args:
        gene_ids: gene ids, in the order their tokens are numbered; repeats take the first id.
        special_tokens: also add ``<cls>`` and ``<eos>`` (Geneformer V2).

    Returns:
        ``<pad>`` = 0, ``<mask>`` = 1 (then ``<cls>`` = 2, ``<eos>`` = 3 with
        ``special_tokens``), then each distinct gene id (as str) in the given order.
    """
    specials = [PAD_TOKEN, MASK_TOKEN] + ([CLS_TOKEN, EOS_TOKEN] if special_tokens else [])
    tokens = {name: i for i, name in enumerate(specials)}
    for gene in gene_ids:
        tokens.setdefault(str(gene), len(tokens))
    return tokens


def load_gene_mapping(path: str | os.PathLike) -> dict[str, str]:
    """Read gene id -> gene id, as Geneformer's ``ensembl_mapping_dict.pkl``.

    Args:
        path: pickle, JSON or TSV, as for :func:`load_gene_medians` (a TSV without a header
            line).

    Returns:
        Gene id (str) -> gene id (str), in the file's order.

    Raises:
        InputError: the file is missing or malformed, or a value is not a non-empty string
            (the message names the file and the gene).
    """
    mapping = _read_mapping(path, "gene id mapping", "gene id", numeric=False)
    return _checked_gene_mapping(mapping, str(path))
