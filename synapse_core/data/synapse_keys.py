"""How a synapse is named: its key ``(bbox_name, Var1)``, its id, its table rows, its file names.

A synapse is the row of a synapse table with a given ``bbox_name`` and ``Var1`` (compared as
text, so ``"007"`` stays ``"007"``). Every part of the package finds rows with :func:`synapse_row`
/ :func:`synapse_rows` and raises :class:`UnknownSynapseError` for a key that is not there;
pictures of a synapse are written under :func:`synapse_file_name` by the CLI and the dashboard.

>>> synapse_id("bbox1", "syn_003")
'bbox1|syn_003'
>>> synapse_file_name("bbox1", "syn_003")
'bbox1_syn_003.gif'
>>> synapse_file_name("bbox 1", "a/b")
'bbox_1_a_b-5c922ca0.gif'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the functions take tables; naming a synapse needs no pandas
    import pandas as pd

#: Separator of bbox name and Var1 in a synapse id (``"bbox1|syn_003"``); never in a bbox name.
ID_SEP = "|"
#: How many unknown keys an error lists before "and N more".
_LISTED = 5


class UnknownSynapseError(KeyError, ValueError):
    """A synapse key that is not in the table; the message names it and what exists.

    A KeyError (a lookup failed) and a ValueError (a bad argument), so callers catching either keep working.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def synapse_id(bbox_name: str, var1) -> str:
    """The id of one synapse, ``"<bbox_name>|<Var1>"``: stable across runs and tables."""
    return f"{bbox_name}{ID_SEP}{var1}"


def synapse_ids(table: pd.DataFrame) -> pd.Series:
    """Ids of every row of a table with ``bbox_name`` and ``Var1`` columns (same index)."""
    return table["bbox_name"].astype(str) + ID_SEP + table["Var1"].astype(str)


def split_synapse_id(sid: str) -> tuple[str, str]:
    """``(bbox_name, Var1)`` of an id; Var1 comes back as a string."""
    if ID_SEP not in sid:
        raise ValueError(f"synapse id {sid!r} must look like 'bbox1{ID_SEP}Var1'")
    bbox, var1 = sid.split(ID_SEP, 1)
    return bbox, var1


def _as_id(key) -> str:
    if isinstance(key, str):
        split_synapse_id(key)  # ValueError for a malformed id
        return key
    bbox_name, var1 = key
    return synapse_id(bbox_name, var1)


def synapse_rows(table: pd.DataFrame, keys: Iterable, missing: str = "raise",
                 where: str = "the synapse table") -> pd.DataFrame:
    """The rows of ``table`` named by ``keys``, in table order.

    Parameters
    ----------
    table : DataFrame
        With ``bbox_name`` and ``Var1`` columns.
    keys : iterable
        Synapse ids (``"bbox1|syn_003"``) and/or ``(bbox_name, Var1)`` pairs.
    missing : {"raise", "ignore"}
        A key not in the table: :class:`UnknownSynapseError` naming it (default), or left out.
    where : str
        What ``table`` is, for the error message.
    """
    if missing not in ("raise", "ignore"):
        raise ValueError(f"missing={missing!r} must be 'raise' or 'ignore'")
    wanted = list(dict.fromkeys(_as_id(k) for k in keys))
    ids = synapse_ids(table)
    found = ids.isin(wanted)
    if missing == "raise":
        unknown = sorted(set(wanted) - set(ids[found]))
        if unknown:
            bboxes = sorted(table["bbox_name"].astype(str).unique())
            listed = ", ".join(s.replace(ID_SEP, "/") for s in unknown[:_LISTED])
            more = f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else ""
            raise UnknownSynapseError(
                f"synapse {listed}{more} {'is' if len(unknown) == 1 else 'are'} not in {where} "
                f"(bboxes there: {', '.join(bboxes) or 'none'}); name synapses as BBOX/VAR1 from that table")
    return table[found]


def synapse_row(table: pd.DataFrame, bbox_name: str, var1, where: str = "the synapse table") -> pd.Series:
    """The row of synapse ``(bbox_name, Var1)``; :class:`UnknownSynapseError` naming it when absent."""
    return synapse_rows(table, [(bbox_name, var1)], where=where).iloc[0]


#: Longest file-name stem kept before the hash (file systems allow 255 bytes per name).
_MAX_STEM = 120


def synapse_file_name(bbox_name: str, var1, suffix: str = ".gif") -> str:
    """``<bbox>_<Var1><suffix>``, safe as a file name and distinct for distinct synapses.

    Runs of characters unsafe in file names become ``_``. When that changed the name (or it is
    longer than 120 characters), 8 hex digits of the key's sha256 are appended, so ``a/b`` and
    ``a_b`` (or ``a:b``) never share a file and one GIF never overwrites another.
    """
    raw = f"{bbox_name}_{var1}"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).lstrip(".") or "_"
    if safe != raw or len(safe) > _MAX_STEM:
        digest = hashlib.sha256(synapse_id(bbox_name, var1).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe[:_MAX_STEM]}-{digest}"
    return safe + suffix
