"""The methods text itself: the facts put in words by the template ``methods.md.jinja``.

:func:`describe` turns a :class:`~.facts.FirstLevel` into counts, ranges and phrases;
:func:`render` fills the template with them and returns Markdown with pandoc citations.
Every sentence of the template is conditional on what the run did.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ..report.pages import BIDI_CONTROLS
from .facts import Methods

TEMPLATE = "methods.md.jinja"
_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def describe(first) -> dict:
    """What the template says about one set of runs: counts, ranges and phrases.

    Parameters
    ----------
    first : facts.FirstLevel
    """
    runs, model = first.runs, first.model
    per_subject = defaultdict(int)
    for run in runs:
        per_subject[(run.subject, run.task)] += 1
    counts = list(per_subject.values()) or [0]
    modelled = [r for r in runs if not r.precomputed]
    pipelines = sorted({r.pipeline for r in runs if r.pipeline})
    preprocessed = {r.preprocessed for r in runs}
    drift = model.drift_model if not (model.drift_model == "cosine" and not model.high_pass) else None
    return {
        "subjects": sorted({r.subject for r in runs}),
        "n_subjects": len({r.subject for r in runs}),
        "tasks": list(dict.fromkeys(r.task for r in runs)),
        "n_runs": len(runs),
        "sessions": sorted({r.session for r in runs if r.session}),
        "runs_min": min(counts),
        "runs_max": max(counts),
        "single_run_sets": sum(1 for c in per_subject.values() if c == 1),  # (subject, task) pairs
        "n_sets": len(per_subject),
        "space": first.space,
        "by_space": first.by_space,
        "surface": bool(runs) and all(r.surface for r in runs),
        "cifti": bool(runs) and all(r.cifti for r in runs),
        "unit": unit_of(runs),
        "preprocessed": "all" if preprocessed == {True} else "none" if preprocessed == {False} else "some",
        "pipelines": pipelines,
        "fmriprep": any(p.lower().startswith("fmriprep") for p in pipelines),
        "trs": [f"{tr:g}" for tr in sorted({r.tr for r in runs})],
        "start_times": [f"{start:g}" for start in sorted({r.start_time for r in runs if r.start_time})],
        "start_times_some": any(not r.start_time for r in runs),
        "volumes_min": min((r.n_volumes for r in runs), default=0),
        "volumes_max": max((r.n_volumes for r in runs), default=0),
        "from_events": len(modelled),
        "precomputed": len(runs) - len(modelled),
        "conditions": list(dict.fromkeys(c for r in modelled for c in r.conditions)),
        "modulated": sum(r.modulated for r in modelled),
        "hrf_text": hrf_text(model.hrf_model, model.convolution),
        "drift_model": drift,
        "high_pass": model.high_pass,
        "high_pass_period": round(1 / model.high_pass) if drift == "cosine" else None,
        "drift_order": model.drift_order,
        "confounds": list(dict.fromkeys(c for r in modelled for c in r.confounds)),
        "confound_strategy": list(model.confound_strategy),
        "imputed": any(r.imputed for r in modelled),
        "censored": sum(r.censored for r in modelled),
        "dummy_confounds": _dummy_scans(runs, "confounds"),
        "dummy_option": _dummy_scans(runs, "option"),
        "noise_model": model.noise_model,
        "smoothing_fwhm": model.smoothing_fwhm,
        "mask_text": mask_text(runs, model.mask_given),
        "precision_weighted": model.precision_weighted,
        "contrasts": list(first.contrasts),
        "baseline_only": bool(first.contrasts) and all(c.baseline for c in first.contrasts),
        "left_out": list(first.left_out),
        "nodes": list(first.nodes),
    }


def _dummy_scans(runs, source) -> dict | None:
    """The runs whose dummy scans came from ``source`` (``confounds`` or ``option``): how
    many runs, how many volumes (``2``, or ``1 to 3``) and whether that was every run."""
    counts = [r.dummy_scans for r in runs if r.dummy_source == source]
    if not counts:
        return None
    low, high = min(counts), max(counts)
    return {"runs": len(counts), "all": len(counts) == len(runs),
            "volumes": f"{low}" if low == high else f"{low} to {high}", "plural": high > 1}


def hrf_text(hrf_model: str, convolution=()) -> str | None:
    """The HRF model of nilearn's design matrices, in words, with its reference; that of a
    model's ``Convolve`` transformations (``convolution``) when the design convolves nothing
    itself; None when nothing is convolved."""
    if str(hrf_model).lower() in ("none", "") and convolution:
        return (and_list(hrf_text(name) for name in convolution)
                + " by the model's `Convolve` transformation (nilearn's `compute_regressor`)")
    if str(hrf_model).lower() in ("none", ""):
        return None
    base, *extras = [part.strip() for part in str(hrf_model).lower().split("+")]
    functions = {
        "glover": "the Glover hemodynamic response function [HRF, @glover1999]",
        "spm": "the canonical hemodynamic response function of SPM [HRF, @friston1998]",
    }
    if base in functions:
        text = functions[base]
        if "derivative" in extras and "dispersion" in extras:
            text += " and its time and dispersion derivatives"
        elif "derivative" in extras:
            text += " and its time derivative"
        return text
    if base == "fir":
        return "a finite impulse response (FIR) basis with a single delay of 0 scans"
    return f"nilearn's '{hrf_model}' HRF model"


#: The plurals of :func:`unit_of`'s nouns.
PLURALS = {"voxel": "voxels", "vertex": "vertices", "grayordinate": "grayordinates"}


def unit_of(runs) -> str:
    """What the runs' maps are made of: ``voxel``, ``vertex`` (GIFTI) or ``grayordinate`` (CIFTI)."""
    if runs and all(r.cifti for r in runs):
        return "grayordinate"
    return "vertex" if runs and all(r.surface for r in runs) else "voxel"


def mask_text(runs, mask_given) -> str:
    """Which mask the runs' models were fitted in."""
    masks = [r.mask for r in runs]
    if runs and all(r.surface for r in runs):
        return (f"the {'grayordinates' if unit_of(runs) == 'grayordinate' else 'vertices'} whose series was finite "
                "and not constant over time (the others, such as the medial wall, were left out)")
    if mask_given and masks and masks[0]:
        return f"the brain mask {code(masks[0])}, the same for every run"
    if all(m is not None for m in masks):
        return "each run's brain mask from the preprocessed derivatives"
    if all(m is None for m in masks):
        return "a brain mask computed by nilearn from each run's mean image"
    return ("each run's brain mask from the derivatives where there was one, "
            "and otherwise a mask computed by nilearn from the run's mean image")


def and_list(values) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def number_word(n: int) -> str:
    """``one`` to ``twelve`` in words, larger numbers in digits."""
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)


#: Characters that end a line or paragraph, or reorder the text around them (the pages'
#: bidirectional controls): in a name from the data, a newline made a paragraph of its own.
_UNSEEN = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]|{BIDI_CONTROLS.pattern}")


def visible(value):
    """``value`` with the characters of :data:`_UNSEEN` shown as escapes (``\\n``, ``\\u202e``),
    as the log shows them; anything but text is returned as it is."""
    if not isinstance(value, str):
        return value
    return _UNSEEN.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), value)


def code(value) -> str:
    """``value`` (a name from the data: a condition, a column, a contrast) as a Markdown code
    span, so that no character of it is read as Markdown or HTML (``<b>x</b>`` stays text);
    fenced by more backticks than it holds in a row."""
    text = visible(str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


#: The characters that Markdown or HTML would read, which :func:`plain` escapes with a backslash
#: (and the page's converter, :mod:`.markdown`, reads back as themselves).
ESCAPED = "\\`*_{}[]<>#|&!"


def plain(value) -> str:
    """``value`` (a name from the data, in running text) with the characters of :data:`ESCAPED`
    escaped by a backslash."""
    return re.sub(f"([{re.escape(ESCAPED)}])", r"\\\1", visible(str(value)))


#: The most confound columns the methods text names one by one (a full motion and tissue
#: strategy makes 32; beyond, as compcor's dozens, it says how many and names the first).
MAX_COLUMNS_NAMED = 64


def _columns(names, limit=MAX_COLUMNS_NAMED) -> str:
    names = list(names)
    if len(names) > limit:
        return f"{len(names)} columns ({', '.join(code(n) for n in names[:limit])}, ...)"
    return and_list([code(n) for n in names])


def _weights(contrast) -> str:
    """A contrast's numeric weights: ``audio`` 1, ``visual`` -1."""
    return ", ".join(f"{code(column)} {weight:g}" for column, weight in contrast.weights) or "none"


def _contrast_list(contrasts) -> str:
    def described(contrast):
        if not contrast.is_f:
            return f"{code(contrast.name)}: {_weights(contrast)}"
        rows = " and ".join(f"({', '.join(f'{code(c)} {w:g}' for c, w in row)})" for row in contrast.rows)
        return (f"{code(contrast.name)}: an F test of {len(contrast.rows)} row{'s' if len(contrast.rows) != 1 else ''}, "
                f"{rows}")

    return "; ".join(described(c) for c in contrasts)


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("bids_fixedfx", "data/boilerplate"),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=visible,  # every value the template writes: no name from the data breaks a line
    )
    environment.filters.update({
        "s": lambda n: "" if n == 1 else "s",
        "was": lambda n: "was" if n == 1 else "were",
        "and_list": and_list,
        "labels": lambda values, prefix: and_list([f"{prefix}-{v}" for v in values]),
        "number": lambda x: f"{float(x):g}",
        "word": number_word,
        "capitalize_number": lambda n: number_word(n).capitalize(),
        "columns": _columns,
        "weights": _weights,
        "contrast_list": _contrast_list,
        "code": lambda values: and_list([code(v) for v in values]),
        "plain": lambda values: and_list([plain(v) for v in values]),
        "tests": lambda tests: "; ".join(
            f"task {task}, contrast {name}: {and_list([f'sub-{s}' for s in subjects])}"
            for task, name, subjects in tests),
    })
    return environment


def render(methods: Methods) -> str:
    """The methods text as Markdown with pandoc citations (``[@key]``).

    Parameters
    ----------
    methods : facts.Methods
    """
    from ..report.tables import CLUSTER_MIN_VOXELS

    group = None
    if methods.group is not None:
        subjects = sorted({s for _, _, subjects in methods.group.tests for s in subjects})
        group = {
            "model": methods.group.model,
            "design": methods.group.design,
            "tests": list(methods.group.tests),
            "subjects": subjects,
            "n_subjects": len(subjects),
            "varying": len({subjects for _, _, subjects in methods.group.tests}) > 1,
            "nodes": list(methods.group.nodes),
            "passed": list(methods.group.passed),
            "columns": list(methods.group.columns),
            "transformed": list(methods.group.transformed),
            "contrasts": list(methods.group.contrasts),
            "precision_weighted": methods.group.precision_weighted,
        }
    units = {unit_of(f.runs) for f in methods.first_levels} or {"voxel"}
    text = _environment().get_template(TEMPLATE).render(
        fitted=methods.fitted,
        versions=methods.versions,
        commands={level: list(commands) for level, commands in methods.commands.items()},
        first_levels=[describe(f) for f in methods.first_levels],
        group=group,
        figure_threshold=methods.figure_threshold,
        undescribed=list(methods.undescribed),
        clusters_listed="voxel" in units,
        peaks_of=and_list(PLURALS[unit] for unit in sorted(units - {"voxel"})),
        inference=methods.inference,
        inference_level=methods.inference_level,
        subject_inference=methods.subject_inference,
        cluster_min_voxels=CLUSTER_MIN_VOXELS,
    )
    return reflow(text)


def reflow(text: str) -> str:
    """One line per paragraph, one blank line between blocks."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    joined = []
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines[0].startswith("#"):
            joined.extend(lines[:1] + ([" ".join(lines[1:])] if lines[1:] else []))
        else:
            joined.append(" ".join(lines))
    return "\n\n".join(joined) + "\n"
