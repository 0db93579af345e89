"""Methods boilerplate: a methods section that states what a run of the app did, with references.

:func:`write` renders ``OUTPUT_DIR/logs/CITATION.md``, ``CITATION.bib``, ``CITATION.html``
(and ``CITATION.tex`` when pandoc is installed) from the template
``bids_fixedfx/data/boilerplate/methods.md.jinja`` and the entries of ``references.bib``
beside it (the repository's ``boilerplate/`` folder links there).

The participant level describes the runs it planned and fitted. The group level reads the
first-level settings back from the sidecars of the subject maps it tested, so its text is
right however the participant level was run (all subjects at once or one job per subject).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

from . import __version__, naming, outputs

TEMPLATE = "methods.md.jinja"
_CITATION = re.compile(r"\[([^\[\]]*@[^\[\]]*)\]")
_KEY = re.compile(r"@([A-Za-z0-9_:-]+)")


@dataclass(frozen=True)
class RunFacts:
    """What the methods text needs to know of one fitted run."""

    subject: str
    session: str | None
    task: str
    tr: float
    n_volumes: int
    conditions: tuple[str, ...]
    confounds: tuple[str, ...]
    precomputed: bool
    preprocessed: bool
    pipeline: str | None  # e.g. "fMRIPrep 23.2.0"
    mask: str | None  # file name of the mask; None when nilearn computed it
    censored: int = 0
    imputed: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """The first-level settings shared by a set of runs."""

    hrf_model: str
    drift_model: str | None
    high_pass: float | None
    drift_order: int | None
    noise_model: str
    smoothing_fwhm: float | None
    precision_weighted: bool
    confound_strategy: tuple[str, ...] = ()
    mask_given: bool = False


@dataclass(frozen=True)
class FirstLevel:
    """Runs fitted with one set of settings, and the contrasts computed on them."""

    runs: tuple[RunFacts, ...]
    model: ModelFacts
    space: str | None
    contrasts: tuple[tuple[str, str], ...]  # (name, weights as text)


@dataclass(frozen=True)
class GroupLevel:
    """The group-level tests: the model and, per task and contrast, the subjects tested."""

    model: str  # "random" or "fixed"
    tests: tuple[tuple[str, str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Methods:
    """Everything the methods text states."""

    first_levels: tuple[FirstLevel, ...]
    group: GroupLevel | None
    fitted: bool
    command: str
    versions: dict


def write(settings, plans, groups) -> list[Path]:
    """Write ``logs/CITATION.md``, ``.bib``, ``.html`` (and ``.tex`` with pandoc) in OUTPUT_DIR.

    Parameters
    ----------
    settings : Settings
    plans : list of RunPlan or None
        The participant level's runs (None at the group level).
    groups : dict or None
        The group level's ``(task, space, contrast) -> subject map records``.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    if groups is not None:
        methods = methods_from_outputs(settings, groups)
    else:
        methods = methods_from_plans(settings, plans)
    keyed = render(methods)
    references = read_references()
    keys = cited_keys(keyed)
    unknown = [k for k in keys if k not in references]
    if unknown:
        raise ValueError(f"The methods template cites {unknown[0]}, which references.bib does not have.")
    logs = Path(settings.output_dir) / "logs"
    written = [
        outputs.write_text(to_markdown(keyed, references), logs / "CITATION.md"),
        outputs.write_text("\n".join(references[k]["raw"] for k in keys) + "\n", logs / "CITATION.bib"),
        outputs.write_text(to_html(keyed, references), logs / "CITATION.html"),
    ]
    tex = to_latex(keyed, logs)
    if tex is not None:
        written.append(outputs.write_text(tex, logs / "CITATION.tex"))
    else:
        (logs / "CITATION.tex").unlink(missing_ok=True)  # never leave one that describes another run
    return written


# ----------------------------------------------------------------------------
# what was done


def methods_from_plans(settings, plans) -> Methods:
    """The methods of a participant-level run, from its settings and planned runs."""
    from .design import CONFOUND_STRATEGIES

    model = settings.model
    strategy = tuple(model.confounds) if model.confounds and all(
        c in CONFOUND_STRATEGIES for c in model.confounds) else ()
    facts = ModelFacts(
        hrf_model=model.hrf_model,
        drift_model=model.drift_model,
        high_pass=model.high_pass if model.drift_model == "cosine" else None,
        drift_order=model.drift_order if model.drift_model == "polynomial" else None,
        noise_model=model.noise_model,
        smoothing_fwhm=model.smoothing_fwhm or None,
        precision_weighted=model.precision_weighted,
        confound_strategy=strategy,
        mask_given=settings.mask is not None,
    )
    runs, contrasts = [], {}
    for plan in plans:
        run, design = plan.run, plan.design
        runs.append(RunFacts(
            subject=run.subject, session=run.session, task=run.task, tr=run.tr,
            n_volumes=run.n_volumes, conditions=tuple(design.conditions),
            confounds=tuple(design.confounds), precomputed=design.precomputed,
            preprocessed=run.preprocessed, pipeline=pipeline_of(run.bold) if run.preprocessed else None,
            mask=run.mask.name if run.mask else None,
            censored=run.n_volumes - len(design.sample_mask) if design.sample_mask is not None else 0,
            imputed=any(note.kind == "imputed" for note in design.warnings),
        ))
        for contrast in plan.contrasts:
            contrasts.setdefault(contrast.name, format_weights(contrast.weights))
    space = plans[0].run.space if plans else None
    first = FirstLevel(tuple(runs), facts, space, tuple(contrasts.items()))
    return Methods((first,), None, not settings.boilerplate_only, settings.command, software_versions())


def methods_from_outputs(settings, groups) -> Methods:
    """The methods of a group-level run, reading the first level back from OUTPUT_DIR's sidecars."""
    output_dir = Path(settings.output_dir)
    tested = {key: items for key, items in groups.items() if len(items) >= 2}
    by_model = defaultdict(lambda: {"runs": {}, "contrasts": {}, "space": None})
    for (task, space, _), items in tested.items():
        for item in items:
            sidecar = _read_json(item.sidecar)
            runs = {}
            for effect_map in _run_maps(sidecar, output_dir):
                found = _run_facts_from_outputs(effect_map, output_dir)
                if found is not None:
                    runs[effect_map.name.split("_contrast-")[0]] = found
            facts = _model_facts_from_sidecar(sidecar, list(runs.values()))
            entry = by_model[facts]
            entry["space"] = space
            entry["runs"].update({name: run for name, (run, _) in runs.items()})
            contrast = sidecar.get("Contrast", {})
            entry["contrasts"].setdefault(contrast.get("Name", item.contrast),
                                          format_weights(contrast.get("Weights", {})))
    first_levels = []
    for facts, entry in by_model.items():
        runs = tuple(entry["runs"].values())
        masks = {run.mask for run in runs}
        given = len(runs) > 1 and len(masks) == 1 and None not in masks  # one --mask for every run
        first_levels.append(FirstLevel(runs, replace(facts, mask_given=given), entry["space"],
                                       tuple(entry["contrasts"].items())))
    tests = tuple(
        (task, _contrast_name(items), tuple(sorted({i.subject for i in items})))
        for (task, _, _), items in sorted(tested.items(), key=lambda kv: tuple(map(str, kv[0])))
    )
    group = GroupLevel("fixed" if settings.group_model == "fixed" else "random", tests)
    return Methods(tuple(first_levels), group, True, settings.command, software_versions())


def _contrast_name(items):
    return _read_json(items[0].sidecar).get("Contrast", {}).get("Name", items[0].contrast)


def _run_maps(subject_sidecar, output_dir) -> list[Path]:
    """The run-level effect maps a subject map was computed from."""
    paths = [_resolve(s, output_dir) for s in subject_sidecar.get("Sources", [])]
    return [p for p in paths if p.name.endswith("_stat-effect_statmap.nii.gz")]


def _run_facts_from_outputs(effect_map: Path, output_dir: Path):
    """A run's facts, and its design sidecar, from the sidecar of one of its maps."""
    sidecar = _read_json(effect_map.with_name(effect_map.name.replace(".nii.gz", ".json")))
    sources = [_resolve(s, output_dir) for s in sidecar.get("Sources", [])]
    designs = [p for p in sources if p.name.endswith("_design.tsv")]
    if not designs:
        return None
    design = _read_json(designs[0].with_suffix(".json"))
    try:
        with open(designs[0], encoding="utf-8") as handle:
            n_volumes = sum(1 for line in handle if line.strip()) - 1
    except OSError:
        return None
    bold = sources[0]
    images = [p for p in sources[1:] if p.name.endswith((".nii.gz", ".nii"))]
    entities = naming.parse(effect_map.relative_to(output_dir))
    preprocessed = "_desc-preproc_" in bold.name
    run = RunFacts(
        subject=entities["subject"], session=entities.get("session"), task=entities["task"],
        tr=float(design.get("RepetitionTime", 0.0)), n_volumes=n_volumes,
        conditions=tuple(design.get("Conditions", [])), confounds=tuple(design.get("Confounds", [])),
        precomputed=bool(design.get("Precomputed", False)), preprocessed=preprocessed,
        pipeline=pipeline_of(bold) if preprocessed else None,
        mask=images[0].name if images else None,
    )
    return run, design


def _model_facts_from_sidecar(sidecar, runs) -> ModelFacts:
    """A subject's first-level settings, from its map's sidecar and its runs' designs."""
    drift = sidecar.get("DriftModel")
    drift = None if drift in (None, "none") else drift
    order = None
    if drift == "polynomial" and runs:
        columns = runs[0][1].get("Columns", [])
        order = sum(1 for c in columns if re.fullmatch(r"drift_\d+", str(c))) or None
    return ModelFacts(
        hrf_model=sidecar.get("HRFModel", "glover"),
        drift_model=drift,
        high_pass=sidecar.get("HighPass") if drift == "cosine" else None,
        drift_order=order,
        noise_model=sidecar.get("NoiseModel", "ar1"),
        smoothing_fwhm=sidecar.get("SmoothingFWHM") or None,
        precision_weighted=bool(sidecar.get("FixedEffects", {}).get("PrecisionWeighted", False)),
    )


@functools.lru_cache(maxsize=64)
def _description(folder: Path) -> dict | None:
    path = folder / "dataset_description.json"
    return _read_json(path) if path.is_file() else None


def pipeline_of(bold) -> str | None:
    """Name and version of the pipeline that made a derivative file (its ``GeneratedBy``)."""
    for folder in Path(bold).parents:
        description = _description(folder)
        if description is None:
            continue
        generated = description.get("GeneratedBy") or []
        if generated and generated[0].get("Name"):
            return " ".join(str(v) for v in (generated[0]["Name"], generated[0].get("Version")) if v)
        return None
    return None


def software_versions() -> dict:
    """The versions of bids-fixedfx and the libraries whose numbers it reports."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"bids-fixedfx": __version__}
    for name in ("nilearn", "pybids", "nibabel", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def format_weights(weights: dict) -> str:
    """A contrast's weights as an expression over design columns, e.g. ``audio - visual``."""
    terms = []
    for column, weight in weights.items():
        weight = float(weight)
        if weight == 0:
            continue
        size = abs(weight)
        term = column if size == 1 else f"{size:g}*{column}"
        terms.append(("-" if weight < 0 else "+", term))
    if not terms:
        return "0"
    text = ("-" if terms[0][0] == "-" else "") + terms[0][1]
    return text + "".join(f" {sign} {term}" for sign, term in terms[1:])


# ----------------------------------------------------------------------------
# the text


def describe(first: FirstLevel) -> dict:
    """What the template says about one set of runs: counts, ranges and phrases."""
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
        "single_run_subjects": sum(1 for c in counts if c == 1),
        "space": first.space,
        "preprocessed": "all" if preprocessed == {True} else "none" if preprocessed == {False} else "some",
        "pipelines": pipelines,
        "fmriprep": any(p.lower().startswith("fmriprep") for p in pipelines),
        "trs": [f"{tr:g}" for tr in sorted({r.tr for r in runs})],
        "volumes_min": min((r.n_volumes for r in runs), default=0),
        "volumes_max": max((r.n_volumes for r in runs), default=0),
        "from_events": len(modelled),
        "precomputed": len(runs) - len(modelled),
        "conditions": list(dict.fromkeys(c for r in modelled for c in r.conditions)),
        "hrf_text": hrf_text(model.hrf_model),
        "drift_model": drift,
        "high_pass": model.high_pass,
        "high_pass_period": round(1 / model.high_pass) if drift == "cosine" else None,
        "drift_order": model.drift_order,
        "confounds": list(dict.fromkeys(c for r in modelled for c in r.confounds)),
        "confound_strategy": list(model.confound_strategy),
        "imputed": any(r.imputed for r in modelled),
        "censored": sum(r.censored for r in modelled),
        "noise_model": model.noise_model,
        "smoothing_fwhm": model.smoothing_fwhm,
        "mask_text": mask_text(runs, model.mask_given),
        "precision_weighted": model.precision_weighted,
        "contrasts": list(first.contrasts),
    }


def hrf_text(hrf_model: str) -> str:
    """The HRF model of nilearn's design matrices, in words, with its reference."""
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


def mask_text(runs, mask_given) -> str:
    """Which mask the runs' models were fitted in."""
    masks = [r.mask for r in runs]
    if mask_given and masks and masks[0]:
        return f"the brain mask `{masks[0]}`, the same for every run"
    if all(m is not None for m in masks):
        return "each run's brain mask from the preprocessed derivatives"
    if all(m is None for m in masks):
        return "a brain mask computed by nilearn from each run's mean image"
    return ("each run's brain mask from the derivatives where there was one, "
            "and otherwise a mask computed by nilearn from the run's mean image")


_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("bids_fixedfx", "data/boilerplate"),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update({
        "s": lambda n: "" if n == 1 else "s",
        "and_list": and_list,
        "labels": lambda values, prefix: and_list([f"{prefix}-{v}" for v in values]),
        "number": lambda x: f"{float(x):g}",
        "word": lambda n: _WORDS[n] if 0 <= n < len(_WORDS) else str(n),
        "capitalize_number": lambda n: (_WORDS[n] if 0 <= n < len(_WORDS) else str(n)).capitalize(),
        "columns": _columns,
        "contrasts": lambda items: and_list([n if n == w else f"{n}: `{w}`" for n, w in items]),
        "tests": lambda tests: "; ".join(
            f"task {task}, contrast {name}: {and_list([f'sub-{s}' for s in subjects])}"
            for task, name, subjects in tests),
    })
    return environment


def and_list(values) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def _columns(names, limit=24) -> str:
    names = list(names)
    if len(names) > limit:
        return f"{len(names)} columns ({', '.join(f'`{n}`' for n in names[:limit])}, ...)"
    return and_list([f"`{n}`" for n in names])


def render(methods: Methods) -> str:
    """The methods text as Markdown with pandoc citations (``[@key]``)."""
    group = None
    if methods.group is not None:
        subjects = sorted({s for _, _, subjects in methods.group.tests for s in subjects})
        group = {
            "model": methods.group.model,
            "tests": list(methods.group.tests),
            "subjects": subjects,
            "n_subjects": len(subjects),
            "varying": len({subjects for _, _, subjects in methods.group.tests}) > 1,
        }
    text = _environment().get_template(TEMPLATE).render(
        fitted=methods.fitted,
        versions=methods.versions,
        command=methods.command or "bids-fixedfx",
        first_levels=[describe(f) for f in methods.first_levels],
        group=group,
    )
    return _reflow(text)


def _reflow(text: str) -> str:
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


# ----------------------------------------------------------------------------
# references and formats


def read_references() -> dict:
    """The entries of ``references.bib``: key -> fields, with ``raw`` the entry's BibTeX."""
    from importlib.resources import files

    text = (files("bids_fixedfx") / "data" / "boilerplate" / "references.bib").read_text(encoding="utf-8")
    return parse_bibtex(text)


def parse_bibtex(text: str) -> dict:
    """Parse simple BibTeX (``field = {value}`` entries) into key -> fields."""
    entries = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        start, position, depth = match.start(), match.end(), 1
        fields = {"type": match.group(1).lower()}
        while depth and position < len(text):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        body = text[match.end():position - 1]
        for field in re.finditer(r"(\w+)\s*=\s*\{", body):
            begin = end = field.end()
            level = 1
            while level:
                level += {"{": 1, "}": -1}.get(body[end], 0)
                end += 1
            fields[field.group(1).lower()] = " ".join(body[begin:end - 1].split())
        fields["raw"] = text[start:position]
        entries[match.group(2)] = fields
    return entries


def cited_keys(text: str) -> list[str]:
    """The keys cited in the text, in order of first citation."""
    keys = []
    for group in _CITATION.findall(text):
        keys += [k for k in _KEY.findall(group) if k not in keys]
    return keys


def _plain(value: str) -> str:
    return value.replace("{", "").replace("}", "").replace("--", "–")


def _authors(entry) -> list[str]:
    return [a.strip() for a in _plain(entry.get("author", "")).split(" and ") if a.strip()]


def author_year(entry) -> str:
    """``Glover, 1999``, ``Friston and Holmes, 1998``, ``Abraham et al., 2014``."""
    authors = [a for a in _authors(entry) if a != "others"]
    last = [a.split(",")[0].strip() for a in authors]
    if len(last) == 1 and "others" not in _authors(entry):
        names = last[0]
    elif len(last) == 2 and "others" not in _authors(entry):
        names = f"{last[0]} and {last[1]}"
    else:
        names = f"{last[0]} et al."
    return f"{names}, {entry.get('year', 'n.d.')}"


def reference(entry) -> str:
    """One entry of the reference list, as plain text."""
    names = []
    for author in _authors(entry):
        if author == "others":
            names.append("et al.")
            continue
        last, _, first = author.partition(",")
        initials = " ".join(f"{p[0]}." for p in re.split(r"[\s]+", first.strip()) if p)
        names.append(f"{last.strip()}, {initials}" if initials else last.strip())
    parts = [", ".join(names), f"({entry.get('year', 'n.d.')}).", _plain(entry.get("title", "")) + "."]
    if entry.get("journal"):
        detail = _plain(entry["journal"])
        if entry.get("volume"):
            detail += f", {entry['volume']}" + (f"({entry['number']})" if entry.get("number") else "")
        if entry.get("pages"):
            detail += f", {_plain(entry['pages'])}"
        parts.append(detail + ".")
    elif entry.get("publisher"):
        parts.append(_plain(entry["publisher"]) + ".")
    if entry.get("doi"):
        parts.append(f"https://doi.org/{entry['doi']}")
    return " ".join(p for p in parts if p.strip("."))


def _cite(text: str, references: dict, link: bool) -> str:
    def replace(match):
        inner = _KEY.sub(
            lambda m: (f'<a href="#ref-{m.group(1)}">{escape(author_year(references[m.group(1)]))}</a>'
                       if link else author_year(references[m.group(1)])),
            match.group(1),
        )
        return f"({inner})"

    return _CITATION.sub(replace, text)


def to_markdown(keyed: str, references: dict) -> str:
    """The methods text with author-year citations and its reference list."""
    listed = "\n\n".join(f"- {reference(references[k])}" for k in cited_keys(keyed))
    return _cite(keyed, references, link=False).rstrip() + "\n\n## References\n\n" + listed + "\n"


def to_html(keyed: str, references: dict) -> str:
    """A standalone HTML page of the methods text (no external request)."""
    body = []
    for block in keyed.strip().split("\n\n"):
        heading = re.match(r"(#+)\s+(.*)", block)
        if heading:
            level = min(len(heading.group(1)), 4)
            body.append(f"<h{level}>{_inline(heading.group(2), references)}</h{level}>")
        else:
            body.append(f"<p>{_inline(block, references)}</p>")
    body.append("<h2>References</h2>\n<ol class=\"references\">")
    for key in cited_keys(keyed):
        text = escape(reference(references[key]))
        text = re.sub(r"(https://doi\.org/\S+)", r'<a href="\1">\1</a>', text)
        body.append(f'<li id="ref-{key}">{text}</li>')
    body.append("</ol>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n<title>Methods: bids-fixedfx</title>\n<style>\n"
        "body { font-family: Georgia, 'Times New Roman', serif; max-width: 46em; margin: 2em auto;"
        " padding: 0 1em; line-height: 1.55; color: #1d1d1f; }\n"
        "code { font-size: 0.9em; } .references li { margin-bottom: 0.4em; }\n"
        "</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _inline(text: str, references: dict) -> str:
    """Markdown inline markup to HTML: code spans, citations, emphasis and links."""
    html = []
    for part in re.split(r"(`[^`]+`)", text):
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            html.append(f"<code>{escape(part[1:-1], quote=False)}</code>")
            continue
        part = _cite(escape(part, quote=False), references, link=True)
        part = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", part)
        html.append(re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', part))
    return "".join(html)


def to_latex(keyed: str, logs: Path) -> str | None:
    """The methods text as a LaTeX document citing ``CITATION.bib`` (biblatex), when pandoc is installed."""
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        return None
    done = subprocess.run(
        [pandoc, "--from", "markdown", "--to", "latex", "--standalone", "--biblatex",
         "--bibliography", "CITATION.bib"],
        input=keyed, capture_output=True, text=True, cwd=logs, check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout else None


def _resolve(source: str, output_dir: Path) -> Path:
    if source.startswith("bids::"):
        return output_dir / source[len("bids::"):]
    return (output_dir / source).resolve()


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return {}
