"""Surface and CIFTI data: a run's GIFTI pair or CIFTI dtseries read into a (volumes x
vertices) array, and 1-D maps written back in the input's form.

fMRIPrep writes surface BOLD as one GIFTI file per hemisphere
(``..._hemi-L_space-fsaverage5_bold.func.gii`` and its ``hemi-R`` twin) and, with
``--cifti-output``, one CIFTI dense series (``..._space-fsLR_den-91k_bold.dtseries.nii``:
cortical vertices and subcortical voxels, its brain-model axis says which). The GLM of a
surface run is fitted on both hemispheres at once, left vertices then right ones, as
nilearn's ``FirstLevelModel`` fits a ``SurfaceImage``; that of a CIFTI run on every
grayordinate, in the file's order.

Between reading and writing, a surface map is held as a NIfTI image of shape
``(n_vertices, 1, 1)`` with an identity affine (:func:`as_image`), so that the fixed
effects, masks and group statistics, written for images, apply to it unchanged. That
image is an internal carrier only: it is never smoothed as a volume, never given to
nilearn's EPI masking, and never written; the files are GIFTI and CIFTI (:func:`write_map`).

The mask of a surface or CIFTI run (:func:`series_mask`): every vertex (grayordinate) is
fitted except those whose series is not finite somewhere (fMRIPrep's
``--medial-surface-nan`` leaves NaN on the medial wall), or constant over time (zero
included), whose GLM has no variance to estimate.

Smoothing (:func:`smoothing_for`): nilearn smooths a ``SurfaceImage`` along its mesh. The
mesh of ``fsaverage5`` ships with nilearn, so a GIFTI pair in ``fsaverage5`` is smoothed
as nilearn smooths it on that mesh's pial surface (the mesh nilearn's own surface GLM
examples use); other surface spaces have no mesh here and CIFTI is not a nilearn image
type, so ``--smoothing-fwhm`` other than 0 is refused on them. The default smoothing
(``--smoothing-fwhm`` not given) applies to volume spaces only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import InputFileError, UsageError

#: What a GIFTI series and a CIFTI series end with.
GIFTI_SERIES, CIFTI_SERIES = ".func.gii", ".dtseries.nii"
#: What a GIFTI map and a CIFTI map end with.
GIFTI_MAP, CIFTI_MAP = ".func.gii", ".dscalar.nii"
#: The surface spaces of fMRIPrep (GIFTI pairs).
GIFTI_SPACES = ("fsaverage", "fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6", "fsnative")
#: Surface spaces whose vertices are each subject's own: no group test across subjects.
NATIVE_SPACES = ("fsnative",)
#: Surface spaces whose mesh nilearn ships (``nilearn.datasets.load_fsaverage``, offline).
MESH_SPACES = ("fsaverage5",)
#: The mesh of :data:`MESH_SPACES` that smoothing and figures use.
MESH = "pial"
#: The vertices of each hemisphere of FreeSurfer's fsaverage meshes (icosahedra of order 3-7).
FSAVERAGE_VERTICES = {"fsaverage3": 642, "fsaverage4": 2562, "fsaverage5": 10242, "fsaverage6": 40962,
                      "fsaverage": 163842}
#: The vertices of each hemisphere of the densities of fsaverage and fsLR that TemplateFlow
#: names (fMRIPrep's ``space-fsaverage_den-10k`` is fsaverage5's mesh).
DENSITY_VERTICES = {("fsaverage", "3k"): 2562, ("fsaverage", "10k"): 10242, ("fsaverage", "41k"): 40962,
                    ("fsaverage", "164k"): 163842, ("fsLR", "32k"): 32492, ("fsLR", "59k"): 59292,
                    ("fsLR", "164k"): 163842}
#: The grayordinates of the HCP's CIFTI densities (fMRIPrep's ``space-fsLR_den-<d>``).
CIFTI_GRAYORDINATES = {"91k": 91282, "170k": 170494}
#: Each hemisphere's ``AnatomicalStructurePrimary`` in GIFTI metadata.
STRUCTURES = {"L": "CortexLeft", "R": "CortexRight"}


@dataclass(frozen=True, eq=False)
class Form:
    """The form of a surface or CIFTI run's data, which its maps are written back in.

    Attributes
    ----------
    kind : {'gifti', 'cifti'}
    space : str
    n_vertices : tuple of int
        GIFTI: the vertices of the left and right hemispheres.
    brain_models : nibabel.cifti2.BrainModelAxis or None
        CIFTI: the input's brain-model axis.
    density : str or None
        CIFTI: the ``den-`` entity of the input (``91k``).
    """

    kind: str
    space: str
    n_vertices: tuple[int, ...] = ()
    brain_models: object = None
    density: str | None = None

    @property
    def size(self) -> int:
        """Vertices (GIFTI, both hemispheres) or grayordinates (CIFTI)."""
        return int(sum(self.n_vertices)) if self.kind == "gifti" else int(len(self.brain_models))

    @property
    def entities(self) -> dict:
        """The entities its outputs carry besides ``space`` (``den`` of CIFTI)."""
        return {"den": self.density} if self.density else {}

    @property
    def extension(self) -> str:
        """The extension of its maps."""
        return GIFTI_MAP if self.kind == "gifti" else CIFTI_MAP

    def difference(self, other) -> str:
        """What tells its vertices apart from those of ``other`` (a Form of the same kind), in
        words for a message."""
        if self.kind == "gifti":
            return f"{'+'.join(map(str, self.n_vertices))} vs {'+'.join(map(str, other.n_vertices))} vertices"
        if self.size != other.size:
            return f"{self.size} vs {other.size} grayordinates"
        return f"{self.size} grayordinates each, but of other vertices, voxels or structures"

    def same_as(self, other) -> bool:
        """Whether two runs' maps lie on the same vertices (and so can be combined)."""
        if other is None or other.kind != self.kind:
            return False
        if self.kind == "gifti":
            return tuple(self.n_vertices) == tuple(other.n_vertices)
        return self.brain_models == other.brain_models


def is_surface_file(path) -> bool:
    """Whether a file is GIFTI or CIFTI data (by its extension)."""
    name = Path(path).name
    return name.endswith((GIFTI_SERIES, CIFTI_SERIES, CIFTI_MAP))


def is_surface_space(space) -> bool:
    """Whether a space is one of fMRIPrep's GIFTI surface spaces."""
    return space in GIFTI_SPACES


# ----------------------------------------------------------------------------
# reading


def _load(path, what):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds on a bad file
        raise InputFileError(f"{what} {path} cannot be read as GIFTI or CIFTI: {error}.") from error


def _gifti_columns(path, what, space=None, hemi=0, density=None) -> np.ndarray:
    """A GIFTI file's data arrays as columns: (n_vertices, n_arrays); a file holding one
    2D array gives that array, vertices x volumes, or transposed when its columns, not its
    rows, are the vertices of the ``space``'s mesh (hemisphere ``hemi``: 0 left, 1 right) as
    nilearn's test-data generator writes a series, and nilearn's ``load_surf_data`` reads it."""
    img = _load(path, what)
    arrays = [np.asarray(d.data) for d in getattr(img, "darrays", ())]
    if len(arrays) == 1 and arrays[0].ndim == 2:  # the whole series in one array
        array = arrays[0]
        vertices = mesh_vertices(space, density) if space else None
        if vertices is None or array.shape[0] == vertices[hemi]:
            return array
        if array.shape[1] == vertices[hemi]:
            return array.T
        raise InputFileError(
            f"{what} {path} holds one array of {array.shape[0]} x {array.shape[1]} values, but "
            f"{mesh_name(space, density)} has {vertices[hemi]} vertices (nilearn's mesh); check the file's "
            "space- entity."
        )
    if not arrays or any(a.ndim != 1 and not (a.ndim == 2 and a.shape[1] == 1) for a in arrays):
        raise InputFileError(f"{what} {path} holds no per-vertex data arrays (a .func.gii of one value per vertex).")
    arrays = [a.reshape(-1) for a in arrays]
    if len({a.size for a in arrays}) != 1:
        raise InputFileError(f"{what} {path} has data arrays of different lengths.")
    return np.column_stack(arrays)


def _cifti_axes(img, path, what):
    from nibabel.cifti2 import cifti2_axes

    try:
        axes = [img.header.get_axis(i) for i in range(2)]
    except Exception as error:  # noqa: BLE001
        raise InputFileError(f"{what} {path} has no readable CIFTI axes: {error}.") from error
    if not isinstance(axes[1], cifti2_axes.BrainModelAxis):
        raise InputFileError(f"{what} {path} has no brain-model axis (a dense CIFTI file is expected).")
    return axes


def read_series(bold, what="BOLD series"):
    """A surface or CIFTI run's series and form.

    Parameters
    ----------
    bold : str or Path
        The left hemisphere's ``.func.gii`` (its ``hemi-R`` twin is read too) or a
        ``.dtseries.nii``.
    what : str
        What the file is, for messages.

    Returns
    -------
    series : numpy.ndarray, shape (n_volumes, n_vertices)
        Left then right vertices (GIFTI); grayordinates in the file's order (CIFTI).
    form : Form

    Raises
    ------
    InputFileError
        A file cannot be read, or the hemispheres have different numbers of volumes.
    """
    from .naming import hemisphere_pair, parse

    bold = Path(bold)
    space = parse(bold.name).get("space") or ""
    if bold.name.endswith(GIFTI_SERIES):
        left, right = hemisphere_pair(bold)
        if not right.is_file():
            raise InputFileError(f"{what} {left} has no right hemisphere {right.name} next to it.")
        density = parse(bold.name).get("den")
        columns = [_gifti_columns(path, what, space, hemi, density) for hemi, path in enumerate((left, right))]
        if columns[0].shape[1] != columns[1].shape[1]:
            raise InputFileError(
                f"{what} {left.name} and {right.name} have different numbers of volumes "
                f"({columns[0].shape[1]} and {columns[1].shape[1]})."
            )
        counts = _check_mesh(space, density, (columns[0].shape[0], columns[1].shape[0]), left, right, what)
        series = np.ascontiguousarray(np.concatenate(columns, axis=0).T)
        return series, Form("gifti", space, counts)
    img = _load(bold, what)
    axes = _cifti_axes(img, bold, what)
    try:
        series = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as error:  # noqa: BLE001
        raise InputFileError(f"{what} {bold} cannot be read: {error}.") from error
    density = _check_density(parse(bold.name).get("den"), axes[1], bold, what)
    return series, Form("cifti", space, brain_models=axes[1], density=density)


def n_volumes(bold, what="BOLD series") -> int:
    """The number of volumes of a surface or CIFTI series: the left file's data arrays, or
    the CIFTI header's series axis (the whole series is read and checked while planning)."""
    from .naming import parse

    bold = Path(bold)
    if bold.name.endswith(GIFTI_SERIES):
        return int(_gifti_columns(bold, what, parse(bold.name).get("space")).shape[1])
    return int(_cifti_axes(_load(bold, what), bold, what)[0].size)


def series_mask(series) -> np.ndarray:
    """The vertices fitted: finite at every volume and not constant over time.

    Parameters
    ----------
    series : numpy.ndarray, shape (n_volumes, n_vertices)

    Returns
    -------
    inside : numpy.ndarray of bool, shape (n_vertices,)
    """
    from .glm import varying_voxels

    finite = np.isfinite(series).all(axis=0)
    varies = np.zeros(series.shape[1], dtype=bool)
    varies[finite] = varying_voxels(series[:, finite])
    return finite & varies


#: What nibabel says of a NIfTI header of more than 32,767 voxels along x: true of the internal
#: ``(n, 1, 1)`` carrier of a surface of that many vertices (fsaverage6, fsLR's grayordinates),
#: which is never written, so it is not said (the maps written are GIFTI and CIFTI).
CARRIER_WARNING = "Using large vector Freesurfer hack"


def hide_carrier_warning() -> None:
    """Ignore nibabel's :data:`CARRIER_WARNING` from here on (call again after
    ``warnings.simplefilter``, which drops it)."""
    import warnings

    warnings.filterwarnings("ignore", message=CARRIER_WARNING, category=UserWarning)


def as_image(values):
    """A map (or mask) of vertices as the internal ``(n, 1, 1)`` NIfTI carrier (identity affine)."""
    import nibabel as nib

    values = np.asarray(values)
    return nib.Nifti1Image(values.reshape(-1, 1, 1), np.eye(4))


def values_of(img) -> np.ndarray:
    """The vertex values of an internal ``(n, 1, 1)`` image."""
    return np.asarray(img.dataobj).reshape(-1)


# ----------------------------------------------------------------------------
# smoothing


def smoothing_for(space, kind, fwhm, given, by_model=False) -> float | None:
    """The smoothing applied to a surface or CIFTI run (the rule of the module's docstring).

    Parameters
    ----------
    space : str
    kind : {'gifti', 'cifti'}
    fwhm : float or None
        ``--smoothing-fwhm``.
    given : bool
        Whether ``--smoothing-fwhm`` was on the command line, or a model file states it (the
        default applies to volumes only).
    by_model : bool
        Whether the model file states it (``Software.nilearn.smoothing_fwhm``), for the message.

    Returns
    -------
    fwhm : float or None

    Raises
    ------
    UsageError
        Smoothing asked for on a space nilearn cannot smooth here.
    """
    if not given or not fwhm:
        return None
    if kind == "gifti" and space in MESH_SPACES:
        return float(fwhm)
    what = "CIFTI data (nilearn smooths volumes and surface images, not CIFTI)" if kind == "cifti" else (
        f"space {space}, whose mesh nilearn does not ship (only {', '.join(MESH_SPACES)})"
    )
    if by_model:
        raise UsageError(
            f"The model file's run node smooths by {fwhm:g} mm (Software.nilearn.smoothing_fwhm), which cannot be "
            f"applied to {what}; set it to 0 there, or pass --smoothing-fwhm 0."
        )
    raise UsageError(
        f"--smoothing-fwhm {fwhm:g} cannot be applied to {what}; pass --smoothing-fwhm 0 "
        "or leave it out (the default smoothing applies to volume spaces only)."
    )


def check_inference(inference, spaces, model_file=None) -> None:
    """Refuse corrected inference on surface or CIFTI spaces: its thresholds, clusters and
    permutations are those of nilearn's volume tools.

    Parameters
    ----------
    inference : InferenceSettings
    spaces : iterable of str
        The surface and CIFTI spaces about to be modelled or tested.
    model_file : Path, optional
        The model given with ``-m``, which then asked for it (a model and the options that it
        states are not given together).

    Raises
    ------
    UsageError
    """
    spaces = sorted(set(spaces))
    if inference.any and spaces:
        asked, remedy = ((f"asked by {Path(model_file).name}'s Model.Software.bids-fixedfx", "leave that section out")
                         if model_file is not None else
                         ("--threshold, --n-perm and the cluster options", "leave those options out"))
        raise UsageError(
            f"Corrected inference ({asked}) is computed on volumes; space {', '.join(spaces)} is a surface or CIFTI "
            f"space: {remedy} or choose volume spaces."
        )


def group_spaces(found, asked):
    """The subject maps a group test may use: those of subject-specific surface spaces
    (:data:`NATIVE_SPACES`) are left out, with a note; asked for by ``--space``, they are an error.

    Parameters
    ----------
    found : list of SubjectMapFiles
    asked : iterable of str
        ``--space`` at the group level.

    Returns
    -------
    kept : list
    left_out : list of str
        The native spaces left out.

    Raises
    ------
    UsageError
        ``--space`` names a native space.
    """
    asked_native = sorted(set(asked) & set(NATIVE_SPACES))
    if asked_native:
        raise UsageError(
            f"--space {asked_native[0]}: its vertices are each subject's own, so subjects cannot be tested "
            "together there; test a template space (fsaverage5, fsLR ...) at the group level."
        )
    left_out = sorted({item.space for item in found if item.space in NATIVE_SPACES})
    return [item for item in found if item.space not in NATIVE_SPACES], left_out


def _check_mesh(space, density, counts, left, right, what):
    """``counts`` (the vertices of a GIFTI pair's hemispheres), checked against the mesh of
    its space where that is fixed (fsaverage's; the figures, peak tables and smoothing of
    :data:`MESH_SPACES` use nilearn's copy of it)."""
    expected = mesh_vertices(space, density)
    if expected is not None and tuple(counts) != expected:
        raise InputFileError(
            f"{what} {left} and its {right.name} have {counts[0]} and {counts[1]} vertices, but "
            f"{mesh_name(space, density)} has {expected[0]} and {expected[1]}; check the files' space- entity."
        )
    return tuple(counts)


def _check_density(density, brain_models, path, what):
    """A CIFTI file's ``den-`` entity, checked against its grayordinates where the density
    is one of the HCP's (:data:`CIFTI_GRAYORDINATES`)."""
    expected = CIFTI_GRAYORDINATES.get(density)
    if expected is not None and len(brain_models) != expected:
        raise InputFileError(
            f"{what} {path} has {len(brain_models)} grayordinates, but den-{density} has {expected}; "
            "check the file's den- entity."
        )
    return density


def mesh_name(space, density=None) -> str:
    """A mesh as messages name it: its space, with its density when it has one (``fsaverage
    den-10k``, as fMRIPrep names fsaverage5 through TemplateFlow)."""
    return f"{space} den-{density}" if density else str(space)


def mesh_vertices(space, density=None):
    """The vertices of each hemisphere (left, right) of a mesh whose size is fixed: an fsaverage
    space (:data:`FSAVERAGE_VERTICES`), or a density of fsaverage or fsLR
    (:data:`DENSITY_VERTICES`); None for others."""
    if density:
        family = "fsaverage" if str(space).startswith("fsaverage") else space
        count = DENSITY_VERTICES.get((family, density))
    else:
        count = FSAVERAGE_VERTICES.get(space)
    return None if count is None else (count, count)


@lru_cache(maxsize=None)
def load_mesh(space):
    """nilearn's mesh of a :data:`MESH_SPACES` space (``PolyMesh``, left and right), or None;
    read once per process (it is read for every surface run's check and smoothing)."""
    if space not in MESH_SPACES:
        return None
    from nilearn.datasets import load_fsaverage

    return load_fsaverage(space)[MESH]


def smooth_series(series, form, fwhm):
    """A GIFTI pair's series smoothed on its mesh as nilearn's ``smooth_img`` smooths a
    ``SurfaceImage`` (non-finite values set to 0 first)."""
    from nilearn.image import smooth_img
    from nilearn.surface import SurfaceImage

    mesh = load_mesh(form.space)
    n_left = form.n_vertices[0]
    img = SurfaceImage(mesh=mesh, data={"left": series[:, :n_left].T, "right": series[:, n_left:].T})
    smoothed = smooth_img(img, fwhm)
    return np.concatenate([smoothed.data.parts["left"], smoothed.data.parts["right"]], axis=0).T


def prepare_run(bold, smoothing_fwhm=None):
    """A surface or CIFTI run's series inside its mask (:func:`series_mask`), smoothed.

    Parameters
    ----------
    bold : str or Path
    smoothing_fwhm : float or None
        Checked by :func:`smoothing_for` while planning.

    Returns
    -------
    masked : series.MaskedRun
        In double precision (as nilearn's ``SurfaceMasker`` gives a ``SurfaceImage``'s
        series); its mask is the ``(n, 1, 1)`` carrier image.
    """
    from .series import MaskedRun

    series, form = read_series(bold)
    series = series.astype(np.float64)  # as nilearn's SurfaceMasker gives a SurfaceImage's series
    inside = series_mask(series)
    if not inside.any():  # its maps would be empty, and its subject's (the intersection) too
        raise InputFileError(
            f"BOLD series {bold} has no {'vertex' if form.kind == 'gifti' else 'grayordinate'} whose series is finite "
            "and varies over time, so it has nothing to fit; check the file, or leave the run out with "
            "--bids-filter-file."
        )
    if form.kind == "gifti":  # one hemisphere empty: it left the subject's and the group's maps without a word
        from .naming import hemisphere_pair

        n_left = form.n_vertices[0]
        for path, part in zip(hemisphere_pair(Path(bold)), (inside[:n_left], inside[n_left:])):
            if not part.any():
                raise InputFileError(
                    f"BOLD series {path} has no vertex whose series is finite and varies over time, so its "
                    "hemisphere would be missing from the subject's and the group's maps; check the file, or leave "
                    "the run out with --bids-filter-file."
                )
    if smoothing_fwhm:
        series = smooth_series(series, form, smoothing_fwhm)
    return MaskedRun(np.ascontiguousarray(series[:, inside]), as_image(inside.astype(np.int8)))


# ----------------------------------------------------------------------------
# maps written and read back


def file_entities(form) -> list:
    """The entities that tell apart the files of one map and their extension: a GIFTI pair
    (``hemi-L`` then ``hemi-R``) or one CIFTI file (with its ``den``).

    Returns
    -------
    files : list of dict
        pybids entities (``hemi``, ``den``, ``extension``) of each file.
    """
    if form.kind == "gifti":
        return [{"hemi": hemi, "extension": GIFTI_MAP} for hemi in STRUCTURES]
    return [{**form.entities, "extension": CIFTI_MAP}]


#: What a surface map's sidecar says of where it was computed (the mask rule).
MASK_RULE = (
    "Every vertex (grayordinate) is fitted except those whose series is not finite at some "
    "volume (e.g. the medial wall) or constant over time (zero included); those are 0 in the "
    "maps (p 1) and 0 in the masks."
)


def sidecar_keys(form) -> dict:
    """Keys a surface or CIFTI map's sidecar adds: the mask rule and the smoothing mesh."""
    keys = {"VertexMask": MASK_RULE}
    if form.density:
        keys["Density"] = {form.density: f"the grayordinates of the input series ({form.size})"}
    if form.kind == "gifti" and form.space in MESH_SPACES:
        keys["SmoothingMesh"] = f"nilearn {form.space} {MESH} (when SmoothingFWHM is set)"
    return keys


def kind_of(path) -> str:
    """``gifti`` or ``cifti``: the kind of a surface file, by its extension."""
    return "gifti" if Path(path).name.endswith(GIFTI_SERIES) else "cifti"


def run_model(run, model):
    """A run's first-level settings: those given, with a surface or CIFTI run's smoothing
    decided by :func:`smoothing_for` (volumes unchanged)."""

    if not is_surface_file(run.bold):
        return model
    return model_in(run.space, kind_of(run.bold), model)


def model_in(space, kind, model):
    """First-level settings with the smoothing of :func:`smoothing_for` a surface or CIFTI
    space (``kind``: ``gifti`` or ``cifti``)."""
    from dataclasses import replace

    return replace(model, smoothing_fwhm=smoothing_for(space, kind, model.smoothing_fwhm, model.smoothing_given,
                                                       model.smoothing_by_model))


def map_images(img, form, name="map"):
    """An internal ``(n, 1, 1)`` map as the images to write, in the order of :func:`map_names`.

    Parameters
    ----------
    img : Nifti1Image
        Internal carrier (float maps are written in single precision, masks as uint8).
    form : Form
    name : str
        The map's name in a CIFTI scalar axis.
    """
    import nibabel as nib

    values = values_of(img)
    dtype = np.uint8 if values.dtype.kind in "iub" else np.float32
    values = values.astype(dtype)
    if values.size != form.size:
        raise ValueError(f"A map of {values.size} values does not fit {form.size} vertices.")
    if form.kind == "gifti":
        images, start = [], 0
        for hemi, count in zip(STRUCTURES, form.n_vertices):
            array = nib.gifti.GiftiDataArray(
                values[start:start + count], intent="NIFTI_INTENT_NONE",
                datatype="NIFTI_TYPE_UINT8" if dtype == np.uint8 else "NIFTI_TYPE_FLOAT32",
                meta={"AnatomicalStructurePrimary": STRUCTURES[hemi]},
            )  # the structure in the file's metadata too, where fMRIPrep's files and Workbench have it
            meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": STRUCTURES[hemi]})
            images.append(nib.gifti.GiftiImage(darrays=[array], meta=meta))
            start += count
        return images
    from nibabel.cifti2 import cifti2_axes

    scalar = cifti2_axes.ScalarAxis([name])
    out = nib.Cifti2Image(values.astype(np.float32)[None, :], header=(scalar, form.brain_models))
    out.nifti_header.set_intent("ConnDenseScalar")
    return [out]


def read_map(path, what="Map"):
    """A written map (GIFTI pair named by its ``hemi-L`` file, or a ``.dscalar.nii``) as the
    internal ``(n, 1, 1)`` image.

    Raises
    ------
    InputFileError
        A file cannot be read.
    """
    from .naming import hemisphere_pair

    path = Path(path)
    if path.name.endswith(GIFTI_MAP):
        values = np.concatenate([_gifti_columns(p, what)[:, 0] for p in hemisphere_pair(path)])
    else:
        img = _load(path, what)
        _cifti_axes(img, path, what)
        values = np.asanyarray(img.dataobj)[0]
    return as_image(values)


def files_of(path) -> list:
    """The files of a map named by one path: both files of a GIFTI pair (named by its
    ``hemi-L`` file), else the path itself."""
    from .naming import hemisphere_pair

    if Path(path).name.endswith(GIFTI_MAP) and "hemi-L" in Path(path).name.split("_"):
        return list(hemisphere_pair(path))
    return [path]


def read_form(path, what="Map") -> Form:
    """The form of a written map (or of a series), from its file(s)."""
    from .naming import hemisphere_pair, parse

    path = Path(path)
    space = parse(path.name).get("space") or ""
    if path.name.endswith(GIFTI_MAP):
        left, right = hemisphere_pair(path)
        counts = tuple(_gifti_columns(p, what).shape[0] for p in (left, right))
        counts = _check_mesh(space, parse(path.name).get("den"), counts, left, right, what)
        return Form("gifti", space, counts)
    img = _load(path, what)
    axes = _cifti_axes(img, path, what)
    return Form("cifti", space, brain_models=axes[1], density=_check_density(parse(path.name).get("den"), axes[1], path,
                                                                              what))
