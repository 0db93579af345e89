"""Outputs: entity-aware file names (SPEC §3), atomic writes, sidecars and dataset files.

This is the one place that knows how the app's files are named.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import __version__, naming
from .locations import can_write_in, creation_mode, nearest_existing
from .sidecars import LIBRARIES, STAT_KEYS, STAT_KEYS_F

logger = logging.getLogger("bids_fixedfx")

CODE_URL = "https://github.com/bids-fixedfx/bids-fixedfx"
#: Hidden folder at the root of OUTPUT_DIR where a set of files is written before it is
#: moved into place (and where a killed run leaves its leftovers, removed by a rerun).
STAGING_ROOT = ".bids-fixedfx-tmp"
BIDSIGNORE = """\
# Files of bids-fixedfx that the BIDS specification does not define yet (surface and CIFTI
# masks among them: *_hemi-* and *_den-*)
*_statmap.*
*_design.*
*_hemi-*
*_den-*
/group
/sub-*/figures
/*.html
/.bids-fixedfx-tmp
/models
"""
README = """\
# Statistical maps made by bids-fixedfx

Each run's GLM (nilearn FirstLevelModel) gives contrast maps under
sub-<label>/[ses-<label>/]func/; each subject's runs are combined by fixed
effects into sub-<label>/func/; group/ holds the tests across subjects.
Maps are named ..._contrast-<label>_stat-<effect|variance|t|z|p>_statmap.nii.gz
with a JSON sidecar giving their sources, contrast weights, degrees of freedom
and model settings. logs/ holds the methods text (CITATION.md) to cite them.
"""


def dataset_names(bids_dir, derivatives=(), folders=(), earlier=None) -> dict:
    """Names for the input datasets in BIDS URIs: ``raw`` for BIDS_DIR, each derivatives
    dataset by its folder's name as a label (``fmriprep``), made unique; ``folders``: other
    folders that inputs come from, ``(name, root)`` (``--design-dir``, ``--mask``'s folder),
    so that every file a sidecar names has a BIDS URI.

    Parameters
    ----------
    earlier : dict, optional
        Name -> root of the datasets that OUTPUT_DIR's ``DatasetLinks`` already name
        (:func:`linked_datasets`): a dataset keeps its name, and a name another dataset has
        is not given again (per-subject jobs over per-subject ``fmriprep`` folders).

    Returns
    -------
    datasets : dict
        Name -> dataset root (absolute).
    """
    from .naming import label_of

    earlier = {name: os.path.realpath(root) for name, root in (earlier or {}).items() if name != "raw"}
    names = {"raw": Path(bids_dir).absolute()}
    for root, base in [*((root, None) for root in derivatives), *((root, base) for base, root in folders)]:
        if base is None:
            try:
                base = label_of(Path(root).name)
            except ValueError:
                base = "derivatives"
        same = [n for n, r in earlier.items() if r == os.path.realpath(root) and n not in names]
        name, count = (same[0] if same else base), 1
        while name in names or (not same and name in earlier):
            count += 1
            name = f"{base}{count}"
        names[name] = Path(root).absolute()
    return names


def linked_datasets(output_dir, bids_dir=None) -> dict:
    """The datasets OUTPUT_DIR's ``dataset_description.json`` links (name -> absolute root);
    empty when it has none, or no readable one. With ``bids_dir``, links of an OUTPUT_DIR
    moved since are followed from its new place (:func:`_earlier_links`)."""
    return {name: Path(output_dir) / path for name, path in _earlier_links(output_dir, bids_dir).items()
            if isinstance(path, str)}


def _earlier_links(output_dir, bids_dir=None) -> dict:
    """The ``DatasetLinks`` of the ``dataset_description.json`` already in OUTPUT_DIR (name ->
    path relative to it); empty when there is none, or no readable one.

    With ``bids_dir``: when OUTPUT_DIR was moved (its ``raw`` link is not BIDS_DIR's path from
    it now), a link that no longer leads to a folder is taken from BIDS_DIR as it was (the
    derivatives beside the raw data stayed where they were): ``../ds/derivatives/fmriprep``
    written beside ``../ds`` is ``../../ds/derivatives/fmriprep`` beside ``../../ds``.
    """
    import posixpath

    path = Path(output_dir) / "dataset_description.json"
    if not path.is_file():  # none yet (or not a file: refused by the location checks)
        return {}
    try:
        links = json.loads(path.read_text(encoding="utf-8")).get("DatasetLinks", {})
    except (OSError, ValueError, AttributeError):
        return {}
    links = {str(name): value for name, value in links.items()} if isinstance(links, dict) else {}
    old_raw = links.get("raw")
    if bids_dir is None or not isinstance(old_raw, str) or posixpath.isabs(old_raw):
        return links
    new_raw = Path(os.path.relpath(os.path.realpath(bids_dir), os.path.realpath(output_dir))).as_posix()
    if new_raw == old_raw:
        return links
    for name, link in links.items():
        if name == "raw" or not isinstance(link, str) or posixpath.isabs(link) or os.path.isdir(Path(output_dir) / link):
            continue
        moved = posixpath.normpath(posixpath.join(new_raw, posixpath.relpath(link, old_raw)))
        if os.path.isdir(Path(output_dir) / moved):
            links[name] = moved
    return links


def source(path, output_dir, datasets=None) -> str:
    """How a sidecar names a file: a BIDS URI, ``bids::<path>`` for the output's own files
    and ``bids:<name>:<path>`` for a file of an input dataset (named in ``DatasetLinks``), else
    a path relative to OUTPUT_DIR (a file of none of them).

    Parameters
    ----------
    path : str or Path
        Relative paths are the output's own.
    output_dir : Path
    datasets : dict, optional
        Name -> root of each input dataset (:func:`dataset_names`).
    """
    path = Path(path)
    output_dir = Path(output_dir)
    if not path.is_absolute():
        return f"bids::{path.as_posix()}"
    try:
        return f"bids::{path.relative_to(output_dir).as_posix()}"
    except ValueError:
        pass
    found = []
    for name, root in (datasets or {}).items():
        try:
            found.append((len(Path(root).parts), name, path.relative_to(root).as_posix()))
        except ValueError:
            continue
    if found:  # the innermost dataset: derivatives may lie inside BIDS_DIR
        _, name, relative = max(found)
        return f"bids:{name}:{relative}"
    return Path(os.path.relpath(path, output_dir)).as_posix()


def dataset_links(output_dir, datasets) -> dict:
    """``DatasetLinks`` of the output: each input dataset's path relative to OUTPUT_DIR, both
    resolved (through ``BIDS_DIR/derivatives -> /scratch/derivs``, ``../..`` of the output is
    not BIDS_DIR)."""
    output_dir = os.path.realpath(output_dir)
    return {name: Path(os.path.relpath(os.path.realpath(root), output_dir)).as_posix()
            for name, root in datasets.items()}


def _atomic(path: Path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, creation_mode())  # as open() would make it (mkstemp's is 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_nifti(img, path: Path) -> Path:
    """Write a NIfTI image atomically (temporary name, then rename).

    A ``.nii.gz`` holds the bytes nibabel serialises (``to_bytes``), compressed at
    nibabel's level (1) by ISA-L's deflate, about three times as fast as zlib's, with a
    zero time stamp as nibabel writes it, so that the same maps give the same file.
    """
    path = Path(path)
    if path.name.endswith(".gz"):
        from isal import igzip

        return _atomic(path, lambda tmp: tmp.write_bytes(igzip.compress(img.to_bytes(), compresslevel=1, mtime=0)))
    return _atomic(path, lambda tmp: img.to_filename(str(tmp)))


def as_float32(img):
    """A map in single precision (half the size on disk; well within 1e-4 of the doubles)."""
    import nibabel as nib
    import numpy as np

    data = np.asarray(img.get_fdata(dtype=np.float32))
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_data_dtype(np.float32)
    return with_units(out)


def with_units(img):
    """A volume whose header states millimetres (the BIDS validator warns of a map or mask
    without units, as an input's header without them gave its masks)."""
    import nibabel as nib
    import numpy as np

    if img.header.get_xyzt_units()[0] != "unknown":
        return img
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header.copy())
    out.header.set_xyzt_units("mm")
    return out


def write_text(text: str, path: Path) -> Path:
    """Write a text file atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: Path) -> Path:
    """Write bytes (an encoded figure, say) atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_bytes(data))


def write_json(data, path: Path) -> Path:
    """Write a JSON file atomically, keys in the given order, indented; a value that is not a
    finite number (NaN, infinity: not JSON) is written as null."""
    return write_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n", path)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def tsv_text(frame) -> str:
    """A table as a BIDS TSV holds it (``n/a`` for missing values)."""
    return frame.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.10g", lineterminator="\n")


def write_tsv(frame, path: Path) -> Path:
    """Write a table as a BIDS TSV (:func:`tsv_text`) atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(tsv_text(frame), encoding="utf-8"))


def dataset_description(bids_dir, output_dir, datasets=None) -> dict:
    """The output's ``dataset_description.json`` content (with the versions of the
    libraries that compute the maps in ``GeneratedBy``)."""
    from importlib import metadata

    generated_by = [{"Name": "bids-fixedfx", "Version": __version__, "CodeURL": CODE_URL}]
    for name in LIBRARIES:
        try:
            generated_by.append({"Name": name, "Version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            pass
    description = {
        "Name": "bids-fixedfx: fixed-effects fMRI statistics",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": generated_by,
        "SourceDatasets": [{"URL": Path(os.path.relpath(bids_dir, output_dir)).as_posix()}],
    }
    links = dataset_links(output_dir, datasets or dataset_names(bids_dir))
    description["DatasetLinks"] = links
    return description


def merged_description(bids_dir, output_dir, datasets=None) -> dict:
    """What :func:`write_dataset_files` writes in ``dataset_description.json``: the output's
    description, its ``DatasetLinks`` those of the file already there with this run's own, and
    its ``SourceDatasets`` the raw dataset and every linked one (the derivatives read)."""
    output_dir = Path(output_dir)
    description = dataset_description(bids_dir, output_dir, datasets)
    description["DatasetLinks"] = {**_earlier_links(output_dir, bids_dir), **description["DatasetLinks"]}
    urls = [source["URL"] for source in description["SourceDatasets"]] + list(description["DatasetLinks"].values())
    description["SourceDatasets"] = [{"URL": url} for url in dict.fromkeys(urls)]  # raw, then each linked input
    return description


def write_dataset_files(bids_dir, output_dir, datasets=None) -> None:
    """Write ``dataset_description.json`` and ``.bidsignore`` (same content from every process);
    ``DatasetLinks`` keeps the links an earlier level wrote (:func:`merged_description`).
    Call it under :func:`folder_lock` of OUTPUT_DIR: jobs beside this one merge their links
    into the same file."""
    output_dir = Path(output_dir)
    _remove_stale_temporaries(output_dir)
    write_json(merged_description(bids_dir, output_dir, datasets), output_dir / "dataset_description.json")
    write_text(BIDSIGNORE, output_dir / ".bidsignore")
    write_text(README, output_dir / "README.md")


@contextmanager
def folder_lock(folder):
    """An exclusive lock on a folder (``flock`` on it, where the system has it; made if
    missing) for the block: jobs beside this one that read a file of it and write it again
    (``dataset_description.json``'s links, a model copy) take turns."""
    folder = Path(folder)
    try:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks (some NFS mounts): unlocked, as where there is no flock
        yield
    finally:
        os.close(handle)  # the lock goes with it


def renamed_datasets(used, settled) -> dict:
    """The names of ``used`` (name -> root) that ``settled`` no longer gives their folder:
    old name -> the name ``settled`` gives it (one folder may have two names, BIDS_DIR's ``raw``
    and ``designs`` of ``--design-dir BIDS_DIR``, say: a name that still names its folder stays)."""
    renamed = {}
    for name, root in used.items():
        if name in settled and os.path.realpath(settled[name]) == os.path.realpath(root):
            continue
        others = sorted(other for other, where in settled.items() if os.path.realpath(where) == os.path.realpath(root))
        if others:
            renamed[name] = others[-1]  # as source() chooses among names of one folder
    return renamed


def rename_sources(data, renamed):
    """A sidecar's content with the BIDS URIs of renamed datasets (``bids:<old>:path``) renamed:
    those its keys hold (``BOLD``, ``Mask``) or list (``Sources``); the text of a nested object
    (a contrast's name) is left as it is."""
    def uri(value):
        if isinstance(value, str) and value.startswith("bids:"):
            name, sep, rest = value[5:].partition(":")
            return f"bids:{renamed[name]}:{rest}" if sep and name in renamed else value
        return value

    return {key: [uri(v) for v in value] if isinstance(value, list) else uri(value) for key, value in data.items()}


#: Seconds after which one of our temporary files outside the sets is a killed job's leftover
#: (a write takes milliseconds; a job beside this one may be writing its own meanwhile).
STALE_TEMPORARY = 60


def _remove_stale_temporaries(output_dir) -> None:
    """Remove our temporary files (``.<name>.<8 random characters><name's extensions>``) that a
    killed job left in OUTPUT_DIR, ``logs/`` and ``models/`` (those under ``sub-*`` and
    ``group`` go with their sets), when older than :data:`STALE_TEMPORARY`."""
    import re
    import time

    now = time.time()
    for folder in (output_dir, output_dir / "logs", output_dir / "models"):
        try:
            paths = list(folder.iterdir())
        except OSError:
            continue
        for path in paths:
            found = re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}((?:\.[^.]+)*)", path.name)
            if found is None or found[2] != "".join(Path(found[1]).suffixes):
                continue
            try:
                if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > STALE_TEMPORARY:
                    path.unlink()
            except OSError:
                continue


def mask_sidecar(description, space, sources) -> dict:
    """The sidecar of a mask we write (subject or group mask)."""
    return {
        "Type": "Brain",
        "Description": description,
        "SpatialReference": space or "orig",
        "Sources": list(sources),
    }


def map_paths(kind, form=None, sidecars=False, **entities) -> list[Path]:
    """The relative paths of one map or mask: a ``.nii.gz`` (``form`` None), a GIFTI pair or a
    CIFTI file (``form``: the input's :class:`~bids_fixedfx.surface.Form`); with
    ``sidecars``, those of their JSON sidecars."""
    from .surface import file_entities

    parts = [{"extension": ".nii.gz"}] if form is None else file_entities(form)
    json_extension = {"extension": ".json"} if sidecars else {}
    return [naming.build(kind, **{**entities, **part, **json_extension}) for part in parts]


def write_map(img, place, kind, form=None, **entities) -> list[Path]:
    """Write one map or mask in the input's form; return its relative paths.

    Parameters
    ----------
    img : Nifti1Image
        A volume, or a surface map held as a ``(n, 1, 1)`` image (:mod:`.surface`).
    place : Staging or Direct
    kind : str
        A kind of :mod:`.naming`.
    form : Form or None
        None for volumes.
    **entities
    """
    paths = map_paths(kind, form, **entities)
    if form is None:
        is_mask = kind.endswith("_mask")
        write_nifti(with_units(img) if is_mask else as_float32(img), place.path(paths[0]))
        return paths
    from .surface import map_images

    for path, image in zip(paths, map_images(img, form, name=entities.get("stat") or "mask")):
        _atomic(Path(place.path(path)), lambda tmp, image=image: image.to_filename(str(tmp)))
    return paths


def write_map_and_sidecars(img, place, kind, sidecar, form=None, **entities) -> list[Path]:
    """Write a map or mask that has no contrast (a mask, a run's R²) in the input's form
    (:func:`write_map`) and its sidecar(s); surface and CIFTI sidecars state the mask rule.
    Return the map's relative paths."""
    from .surface import sidecar_keys

    paths = write_map(img, place, kind, form, **entities)
    extra = sidecar_keys(form) if form is not None else {}
    for path in map_paths(kind, form, sidecars=True, **entities):
        write_json({**sidecar, **extra}, place.path(path))
    return paths


def write_statmaps(kind, contrast_maps, place, sidecar, form=None, **entities) -> list[Path]:
    """Write a contrast's five maps and their sidecars; return the maps' relative paths.

    Parameters
    ----------
    kind : str
        A statmap kind of :mod:`.naming`.
    contrast_maps : ContrastMaps
    place : Staging or Direct
        Where files go (``place.path(relative)``).
    sidecar : dict
        The keys all five sidecars share; each adds ``Statistic``.
    form : Form or None
        Surface and CIFTI maps: the input's form (:func:`write_map`).
    **entities
        The maps' entities besides ``contrast`` and ``stat``.
    """
    from .surface import sidecar_keys

    written = []
    test = getattr(contrast_maps.contrast, "test", "t")
    extra = sidecar_keys(form) if form is not None else {}
    for stat in contrast_maps.maps:
        paths = write_map(contrast_maps.maps[stat], place, kind, form, contrast=contrast_maps.contrast.label,
                          stat=stat, **entities)
        keys = STAT_KEYS.get(stat, {}) if test != "F" else {
            "NumeratorDegreesOfFreedom": f_rows(contrast_maps.contrast), **STAT_KEYS_F.get(stat, {})}
        for path in map_paths(kind, form, sidecars=True, contrast=contrast_maps.contrast.label, stat=stat,
                              **entities):
            write_json({**sidecar, "Statistic": stat, **keys, **extra}, place.path(path))
        written += paths
    return written


def f_rows(contrast) -> int:
    """An F contrast's rows: the numerator's degrees of freedom of its F statistic (nilearn's
    ``Contrast.dim``; ``DegreesOfFreedom`` states the denominator's)."""
    import numpy as np

    vector = getattr(contrast, "vector", None)
    if vector is not None:
        return int(np.atleast_2d(vector).shape[0])
    weights = getattr(contrast, "weights", None)
    return len(weights) if isinstance(weights, (list, tuple)) else 1


def write_inference_maps(kind, label, inference_maps, place, sidecar, group_model=None, design=None, desc_parts=(),
                         **entities) -> list[Path]:
    """Write a contrast's corrected-inference maps (:mod:`.inference`) and their sidecars.

    Parameters
    ----------
    kind : str
        ``subject_statmap`` or ``group_statmap``.
    label : str
        The contrast's file label.
    inference_maps : list of InferenceMap
    place : Staging or Direct
    sidecar : dict
        Keys every map shares (``Contrast``, ``DegreesOfFreedom`` ...); ``Sources`` is
        set to the unthresholded z map of the same contrast, which the thresholded maps are
        made from (a permutation test's ``logp`` maps keep the sidecar's: the maps tested).
    group_model : str or None
        The group model, which the maps' ``desc`` names too.
    design : str or None
        A group design's ``desc`` (:func:`.naming.group_design_desc`), likewise.
    desc_parts : tuple of str
        The node's and group's parts of ``desc`` (:func:`bids_fixedfx.naming.statmap_desc`).
    **entities

    Returns
    -------
    paths : list of Path
        Relative to OUTPUT_DIR.
    """
    z_map = naming.build(kind, contrast=label, stat="z", desc=naming.statmap_desc(group_model, design=design,
                                                                                 parts=desc_parts),
                         extension=".nii.gz", **entities)
    written = []
    for item in inference_maps:
        desc = naming.statmap_desc(group_model, item.desc, design, desc_parts)
        names = {
            ext: naming.build(kind, contrast=label, stat=item.stat, desc=desc, extension=ext, **entities)
            for ext in (".nii.gz", ".json")
        }
        write_nifti(as_float32(item.img), place.path(names[".nii.gz"]))
        tested = item.stat == "logp" and "Sources" in sidecar  # a permutation test: of the maps tested
        sources = sidecar["Sources"] if tested else [source(z_map, place.output_dir)]
        write_json({**sidecar, "Sources": sources, "Statistic": item.stat, **item.sidecar}, place.path(names[".json"]))
        written.append(names[".nii.gz"])
    return written




# ----------------------------------------------------------------------------
# sets of files that replace each other as a whole (SPEC §4)


class Direct:
    """Files written straight into OUTPUT_DIR (each one atomically)."""

    def __init__(self, output_dir):
        self.output_dir = Path(output_dir)

    def path(self, relative) -> Path:
        """Where to write ``OUTPUT_DIR/relative``: there."""
        return self.output_dir / relative


#: The staging folders of this process not yet moved into place or discarded.
_STAGED: set = set()


def _staging_folder(root: Path, key: str, attempts: int = 20) -> Path:
    """A new folder for a set under the staging root. Another job that ends removes the root when
    it is empty (:meth:`Staging.discard`), which can fall between making the root and the folder
    in it: the root is then made again."""
    for _ in range(attempts - 1):
        try:
            return Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        except FileNotFoundError:
            root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))


#: The signals that stop the app (``cli.run``'s handlers raise on them), which :func:`stops_held` holds.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stops_held():
    """SIGINT, SIGTERM and SIGHUP (and a SIGALRM the command handles) held back while the block
    runs, then raised again: a set's files are moved into place all or none (a SIGTERM among
    the moves left a subject's new effect map beside its earlier variance and t maps, which the
    group level then combined).
    In a thread other than the main one, nothing is held (Python sets handlers there only)."""
    pending, handlers = [], {}
    alarm = getattr(signal, "SIGALRM", None)  # the command's stop raised again (cli._unraisable) comes by it
    held = (*STOPS, alarm) if alarm is not None and callable(signal.getsignal(alarm)) else STOPS
    try:
        for stopping in held:
            if signal.getsignal(stopping) is not None:  # (None: a handler not set from Python, left alone)
                handlers[stopping] = signal.signal(stopping, lambda number, frame: pending.append(number))
    except ValueError:  # not the main thread
        for stopping, handler in handlers.items():
            signal.signal(stopping, handler)
        handlers = {}
    try:
        yield
    finally:
        for stopping, handler in handlers.items():
            signal.signal(stopping, handler)
        if pending:
            signal.raise_signal(pending[0])  # its own handler now: Ctrl-C's, or the command's (cli.run)


class Staging:
    """One set of outputs (a subject's maps for a task and space, say), written aside
    under :data:`STAGING_ROOT` and moved into OUTPUT_DIR together, replacing the set's
    earlier files.

    Parameters
    ----------
    output_dir : Path
    key : str
        Names the set (``sub-01_task-x_space-MNI``); leftovers of a killed run with the
        same key are removed when a new set is started.
    """

    def __init__(self, output_dir, key: str):
        self.output_dir = Path(output_dir)
        self.key = key
        root = self.output_dir / STAGING_ROOT
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(f"{key}.*"):
            if leftover not in _STAGED:  # (a set of this run, not yet moved: kept)
                shutil.rmtree(leftover, ignore_errors=True)
        self.folder = _staging_folder(root, key)
        _STAGED.add(self.folder)
        self.written: list[Path] = []

    def path(self, relative) -> Path:
        """Where to write the file that will be ``OUTPUT_DIR/relative``."""
        relative = Path(relative)
        self.written.append(relative)
        return self.folder / relative

    def rename_datasets(self, renamed) -> None:
        """Rename datasets in the BIDS URIs of the sidecars staged (``renamed``: old name -> new)."""
        if not renamed:
            return
        for relative in self.written:
            path = self.folder / relative
            if path.suffix == ".json" and path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                again = rename_sources(data, renamed)
                if again != data:
                    write_json(again, path)

    def commit(self, stale=()) -> list[Path]:
        """Remove the ``stale`` files (relative paths) not written again, then move the
        set into place, whole (a stopping signal meanwhile is acted on once it is in
        place: :func:`stops_held`); return the final paths.

        A move that fails partway (a full disk, a folder of another file system) puts the
        set back as it was before the error is raised: each file replaced or removed is
        first linked (a hard link, which costs no space) under the staging folder.
        """
        keep = set(self.written)
        removed = [Path(relative) for relative in stale if Path(relative) not in keep]
        self._check_writable()
        kept, placed, made = {}, [], []  # earlier files' links; files moved in; folders made
        with stops_held():
            try:
                for relative in [*removed, *self.written]:
                    kept.update(self._keep_earlier(relative))
                for relative in removed:
                    (self.output_dir / relative).unlink(missing_ok=True)
                for relative in self.written:
                    target = self.output_dir / relative
                    made.extend(_make_folders(target.parent))
                    os.replace(self.folder / relative, target)
                    placed.append(target)
            except OSError:
                _put_back(kept, placed, made)
                raise
        self.discard()
        _remove_emptied_folders(self.output_dir, removed)
        return placed

    def _keep_earlier(self, relative) -> dict:
        """{file: where it is kept under the staging folder} for an earlier file the commit
        will replace or remove ({} when there is none): a hard link to it, or, on a file
        system without hard links, the file itself moved there (None when neither can be
        made: it is then neither put back nor removed by a failed commit)."""
        target = self.output_dir / relative
        if not (target.is_symlink() or target.is_file()):
            return {}
        kept = self.folder / EARLIER / relative
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.link(target, kept, follow_symlinks=False)
        except OSError:
            try:
                os.replace(target, kept)
            except OSError:
                return {target: None}
        return {target: kept}

    def _check_writable(self) -> None:
        """Refuse, before any file moves, a set whose folders this user cannot write in (a
        subject's folder made read-only, another user's ``figures/``): the moves stopped at the
        first such file, leaving the set half replaced.

        Raises
        ------
        UsageError
            Naming the folder.
        """
        from .errors import UsageError

        for folder in sorted({(self.output_dir / relative).parent for relative in self.written}):
            existing = nearest_existing(folder)
            if not can_write_in(existing):
                raise UsageError(f"{existing} cannot be written by this user, so the outputs of {self.key} were not "
                                 "replaced (nothing of them was moved); make it writable (chmod u+w), or give "
                                 "another OUTPUT_DIR.")

    def discard(self) -> None:
        """Remove what was staged (the set's earlier files stay as they were)."""
        _STAGED.discard(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass  # another job's set is being written

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.discard()


#: Where a set's staging folder keeps links to the earlier files its commit replaces
#: (no output's name starts with a dot).
EARLIER = ".earlier"


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; return those it made, deepest last."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(exist_ok=True)
    return list(reversed(missing))


def _put_back(kept, placed, made) -> None:
    """Undo a commit that failed partway: the earlier files (``kept``: file -> where it is
    kept, None where it could not be) back in place, the files of the set placed without an
    earlier one removed, the folders made for them removed when empty. Best effort: the
    error that stopped the commit is the one reported."""
    for target in placed:
        if target not in kept:
            target.unlink(missing_ok=True)
    for target, link in kept.items():
        if link is None:
            continue  # not kept: the set's new file stays rather than none
        try:
            os.replace(link, target)
        except OSError as error:
            logger.warning("%s could not be put back (%s); rerun this job to make it again.", target, error)
    for folder in reversed(made):
        remove_if_empty(folder)


def remove_if_empty(folder) -> None:
    """Remove ``folder`` if it exists and holds nothing."""
    try:
        Path(folder).rmdir()
    except OSError:
        pass  # not empty, or gone


def _remove_emptied_folders(output_dir, removed) -> None:
    """Remove the folders that the ``removed`` files (relative paths) left empty, up to a
    subject's or the group's folder (an earlier job's ``figures/`` when this one writes no
    reports); a folder that still holds anything, or that cannot be removed, stays."""
    folders = {parent for relative in removed for parent in Path(relative).parents if len(parent.parts) > 1}
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):  # the deepest first
        try:
            (Path(output_dir) / folder).rmdir()
        except OSError:
            continue


def remove_files(output_dir, relatives) -> None:
    """Remove files of OUTPUT_DIR (relative paths) that a rerun no longer makes."""
    for relative in relatives:
        (Path(output_dir) / relative).unlink(missing_ok=True)


def _allowed(value) -> tuple:
    values = value if isinstance(value, (tuple, list, set)) else (value,)
    return tuple(None if v is None else str(v) for v in values)


def existing_set(output_dir, folder, **wanted) -> list[Path]:
    """The files under ``OUTPUT_DIR/folder`` whose names carry the ``wanted`` entities
    (``space=None``: files with no space), our temporary names of them included.

    Parameters
    ----------
    output_dir : Path
    folder : str
        ``sub-01`` or ``group``.
    **wanted
        pybids entity names and values (a tuple: any of them; None: absent).

    Returns
    -------
    paths : list of Path
        Relative to OUTPUT_DIR.
    """
    output_dir = Path(output_dir)
    found = []
    for path in sorted((output_dir / folder).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(output_dir)
        name = relative.name
        if naming.is_temporary(name):
            relative_for_parse = relative.with_name(name[1:])
        else:
            relative_for_parse = relative
        entities = naming.parse(relative_for_parse)
        if all(entities.get(key) in _allowed(value) for key, value in wanted.items()):
            found.append(relative)
    return found
