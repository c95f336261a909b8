"""A class's hand-ins, by student, in the layouts a course meets them in (the hand-ins are untrusted;
the layout around them is the instructor's):

- **one entry per student**: a sub-folder, a ``.zip`` or a ``.ipynb`` of the folder, named by the
  folder or the file's stem (a ``<student>/cnn2d/`` sub-folder is taken when there is one);
- **nbgrader's** ``submitted/<student>/cnn2d/``, as ``nbgrader collect`` (or the exchange) leaves it:
  the ``submitted`` folder or the course root holding it; each student's ``cnn2d`` folder, named by
  the student (students with no ``cnn2d`` folder there handed in other assignments only: left out);
- **Gradescope's "Export Submissions"**: the zip, or the folder it was extracted to (or the folder
  holding that as its only sub-folder), with ``submission_metadata.yml`` and one ``submission_<id>/``
  folder per submission; named by the metadata's ``:submitters:`` (``:sid:``, else the email's local
  part, else ``:name:``; a group's names joined by ``+``), the folder's name when it has no entry.

    entries = hand_ins(Path("submissions"), workdir=tmp)   # {"alice": Path(...), ...}

A Gradescope zip is unpacked (its notebooks and metadata only, with ``submission.safe_unzip``) into
a new folder under ``workdir``, which must outlive the use of the paths returned; without
``workdir``, into a temporary folder of this process that is removed when the process exits.

``content_digest`` is a hand-in's (or any folder's) content as one hash, for a resumable batch.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

from autograder import course
from autograder.assignment.submission import MAX_ZIP_BYTES, MAX_ZIP_ENTRIES, CannotGrade, safe_unzip

__all__ = ["GRADESCOPE_METADATA", "content_digest", "hand_ins", "safe_name"]

GRADESCOPE_METADATA = "submission_metadata.yml"
NBGRADER_SUBMITTED = "submitted"
# A Gradescope export holds a whole class: the per-hand-in zip limits, for up to this many hand-ins
# (Gradescope built it from real uploads; of them only the notebooks are unpacked).
EXPORT_HAND_INS = 500
IGNORED = ("__MACOSX", ".ipynb_checkpoints", "__pycache__")

_session: tempfile.TemporaryDirectory | None = None   # where hand_ins unpacks without a workdir


def hand_ins(path: Path, workdir: Path | None = None) -> dict[str, Path]:
    """Student -> a folder, notebook or zip that ``Submission.load`` reads, sorted by student. ``path``
    is a folder in one of the layouts above or a Gradescope export zip. Raises CannotGrade when
    ``path`` is none of them (a missing path, another file, an unreadable or oversized zip)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _gradescope(_unpack_export(path, workdir))
    if not path.is_dir():
        raise CannotGrade(f"{path} is no folder of hand-ins nor a Gradescope export zip"
                          + ("" if path.exists() else " (it does not exist)"))
    if (root := _export_root(path)) is not None:
        return _gradescope(root)
    if (path / NBGRADER_SUBMITTED).is_dir():
        return _per_student(path / NBGRADER_SUBMITTED, nbgrader=True)
    return _per_student(path, nbgrader=path.name == NBGRADER_SUBMITTED)


def _per_student(folder: Path, nbgrader: bool) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in _entries(folder):
        if p.is_dir():
            inner = p / course.ASSIGNMENT
            if inner.is_dir():
                p = inner
            elif nbgrader:
                continue   # in submitted/ for other assignments only
            _add(out, p.parent.name if p is inner else p.name, p)
        elif p.suffix.lower() in (".zip", ".ipynb"):
            _add(out, p.stem, p)
    return dict(sorted(out.items()))


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name not in IGNORED)


def _add(out: dict[str, Path], name: str, path: Path) -> None:
    """Two entries of one name (``alice/`` and ``alice.zip``): the second keeps its file name."""
    if name in out:
        name, k = path.name, 1
        while name in out:
            k += 1
            name = f"{path.name}-{k}"
    out[name] = path


# ----------------------------------------------------------------------------- Gradescope's export
def _export_root(folder: Path) -> Path | None:
    """The folder holding submission_metadata.yml: ``folder`` or its only sub-folder."""
    if (folder / GRADESCOPE_METADATA).is_file():
        return folder
    subs = [p for p in _entries(folder) if p.is_dir()]
    if len(subs) == 1 and (subs[0] / GRADESCOPE_METADATA).is_file():
        return subs[0]
    return None


def _unpack_export(archive: Path, workdir: Path | None) -> Path:
    """Gradescope's export zip unpacked (notebooks and metadata only): the folder of its metadata."""
    global _session
    if workdir is None:
        if _session is None:   # its finalizer removes it when the process exits
            _session = tempfile.TemporaryDirectory(prefix="cnn2d-hand-ins-")
        workdir = Path(_session.name)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="gradescope-export-", dir=workdir))

    def keep(name: str) -> bool:
        parts = Path(name).parts
        return name.endswith(".ipynb") or (parts[-1:] == (GRADESCOPE_METADATA,) and len(parts) <= 2)

    try:
        safe_unzip(archive, dest, keep=keep, max_entries=MAX_ZIP_ENTRIES * EXPORT_HAND_INS,
                   max_bytes=MAX_ZIP_BYTES * EXPORT_HAND_INS)
        root = _export_root(dest)
        if root is None:
            raise CannotGrade(f"{archive.name} is no Gradescope export (it holds no {GRADESCOPE_METADATA}): "
                              "pass a folder of hand-ins instead, one sub-folder, zip or notebook per student")
        for folder in _read_metadata(root / GRADESCOPE_METADATA):   # a submission with no notebook at all
            if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", folder):   # is graded (0, "missing"), not lost
                (root / folder).mkdir(exist_ok=True)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return root


def _gradescope(root: Path) -> dict[str, Path]:
    metadata = _read_metadata(root / GRADESCOPE_METADATA)
    out: dict[str, Path] = {}
    for p in _entries(root):
        if p.is_dir():
            entry = metadata.get(p.name)
            _add(out, _submitter_name(entry) or safe_name(p.name) or "submission", p)
    return dict(sorted(out.items()))


def _read_metadata(path: Path) -> dict:
    """submission_metadata.yml: {"submission_<id>": {":submitters": [{":name", ":sid", ":email"}], ...}}.
    Gradescope writes it from Ruby: keys are symbols (a leading colon), values may carry Ruby tags
    (``!ruby/object:BigDecimal``), read here as plain values. Unreadable: no names (folder names)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def plain(loader, tag_suffix, node=None):
        node = tag_suffix if node is None else node
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    Loader.add_constructor(None, plain)
    try:
        data = yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=Loader)
    except (OSError, yaml.YAMLError):
        return {}
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


def _field(entry, key: str):
    if not isinstance(entry, dict):
        return None
    return entry[f":{key}"] if f":{key}" in entry else entry.get(key)


def _submitter_name(entry) -> str | None:
    submitters = _field(entry, "submitters")
    if not isinstance(submitters, list):
        return None
    names = []
    for person in submitters:
        email = str(_field(person, "email") or "")
        for candidate in (_field(person, "sid"), email.split("@")[0] if "@" in email else None,
                          _field(person, "name")):
            if candidate is not None and (name := safe_name(str(candidate))):
                names.append(name)
                break
    return "+".join(dict.fromkeys(names)) or None


def safe_name(text: str, limit: int = 100) -> str:
    """``text`` as a folder name: accents dropped; ASCII letters, digits, ``.``, ``_``, ``-``, ``+`` and ``@``, the rest
    runs of ``_``; no leading dot; "" when nothing is left."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))  # é -> e
    name = re.sub(r"[^A-Za-z0-9._+@-]+", "_", text.strip()).strip("_")[:limit]
    return name.lstrip(".") if name.strip("._") else ""


# ----------------------------------------------------------------------------- content
def content_digest(path: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 of a file's bytes, or of a folder's files (their relative paths and bytes, symlinks as
    their target, never followed), names in ``skip`` left out at any depth. Timestamps do not count."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_file() and not path.is_symlink():
        h.update(b"file\0")
        _update(h, path)
        return h.hexdigest()
    h.update(b"folder\0")
    for top, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in skip and not os.path.islink(os.path.join(top, d)))
        links = [d for d in os.listdir(top) if d not in skip and os.path.islink(os.path.join(top, d))]
        for name in sorted(set(files) | set(links)):
            if name in skip:
                continue
            p = Path(top) / name
            rel = p.relative_to(path).as_posix().encode("utf-8", "surrogateescape")
            if p.is_symlink():
                h.update(b"link\0" + rel + b"\0" + os.readlink(p).encode("utf-8", "surrogateescape") + b"\0")
            elif p.is_file():
                h.update(b"file\0" + rel + b"\0")
                _update(h, p)
    return h.hexdigest()


def _update(h, path: Path) -> None:
    with open(path, "rb") as f:
        h.update(os.fstat(f.fileno()).st_size.to_bytes(8, "big"))
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
