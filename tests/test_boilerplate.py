"""The methods boilerplate: logs/CITATION.* state what the run did, and only that.

Most tests use ``--boilerplate-only`` (no model is fitted), changing settings and checking
that the text follows; one runs both levels on a small copy of the example dataset to check
the group level's text, which is read back from the outputs' sidecars.
"""

from __future__ import annotations

import html
import html.parser
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bids_fixedfx import boilerplate
from bids_fixedfx.cli import main
from bids_fixedfx.inference import InferenceSettings

ROOT = Path(__file__).resolve().parents[1]


def citation(output):
    return (output / "logs" / "CITATION.md").read_text(encoding="utf-8")


def boilerplate_only(dataset, output, *options):
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation",
                 "--boilerplate-only", *options]) == 0
    return citation(output)


def test_boilerplate_only_writes_the_citation_files_and_no_map_or_report(example_dataset, tmp_path, capsys):
    output = tmp_path / "out"
    capsys.readouterr()
    boilerplate_only(example_dataset, output)
    # the job said where the text went (it did not, and the group level said nothing at all)
    assert f"Methods text written (no map): {output / 'logs' / 'CITATION.md'}" in capsys.readouterr().err
    logs = sorted(p.name for p in (output / "logs").iterdir())
    expected = ["CITATION.bib", "CITATION.html", "CITATION.md"] + (["CITATION.tex"] if shutil.which("pandoc") else [])
    assert logs == expected
    assert not list(output.glob("sub-*")) and not list(output.glob("*.html")) and not (output / "group").exists()


def test_default_settings_are_stated(example_dataset, tmp_path):
    text = boilerplate_only(example_dataset, tmp_path / "out")
    for expected in (
        "9 BOLD runs of the checkerboard task from 3 subjects",
        "2 sessions (ses-1 and ses-2)",
        "1 to 4 runs per subject",
        "fMRIPrep 23.2.0",
        "and SciPy ",  # its version, as GeneratedBy records it
        "MNI152NLin2009cAsym space",
        "The repetition time was 2 s",
        "Glover hemodynamic response function",
        "discrete cosine basis set, a high-pass filter with a cut-off of 0.01 Hz (100 s)",
        "Six nuisance regressors",
        "`trans_x`, `trans_y`, `trans_z`, `rot_x`, `rot_y` and `rot_z`",
        "isotropic Gaussian kernel of 5 mm full width at half maximum",
        "first-order autoregressive model, AR(1)",
        "each run's brain mask from the preprocessed derivatives",
        "the mean of the runs' effects",
        "For the one subject with a single run",
        "--boilerplate-only",
        "proportion of each voxel's variance that the model explains (R², nilearn's `r_square`, computed on the "
        "pre-whitened data and design)",
    ):
        assert expected in text, expected
    # it states nothing that was not done
    for absent in ("Group level", "SPM", "polynomial", "precision", "ordinary least squares, without",
                   "No spatial smoothing", "precomputed"):
        assert absent not in text, absent


def test_changing_two_settings_changes_the_text(example_dataset, tmp_path):
    default = boilerplate_only(example_dataset, tmp_path / "a")
    changed = boilerplate_only(example_dataset, tmp_path / "b", "--smoothing-fwhm", "0", "--noise-model", "ols")
    assert "5 mm full width at half maximum" in default and "autoregressive" in default
    assert "No spatial smoothing was applied" in changed
    assert "ordinary least squares, without modelling the temporal autocorrelation" in changed
    assert "5 mm" not in changed and "autoregressive" not in changed and "Worsley et al., 2002" not in changed
    assert "worsley2002" not in (tmp_path / "b" / "logs" / "CITATION.bib").read_text()


@pytest.mark.parametrize(
    ("options", "present", "absent"),
    [
        (["--hrf-model", "spm + derivative", "--drift-model", "polynomial", "--drift-order", "2"],
         ["canonical hemodynamic response function of SPM", "and its time derivative",
          "polynomial regressors up to order 2", "Friston et al., 1998"],
         ["Glover", "cosine"]),
        (["--confounds", "none", "--precision-weighted", "--drift-model", "none"],
         ["No confound regressor was included", "weighted by their inverse variance",
          "No drift regressor was included"],
         ["nuisance regressor", "`trans_x`", "cosine", "divided by the number of runs"]),
        (["--participant-label", "03"],
         ["1 BOLD run of the checkerboard task from 1 subject", "Each subject had a single run"],
         ["combined by fixed effects", "sessions ("]),
    ],
)
def test_other_settings_are_stated(example_dataset, tmp_path, options, present, absent):
    text = boilerplate_only(example_dataset, tmp_path / "out", *options)
    for expected in present:
        assert expected in text, expected
    for unexpected in absent:
        assert unexpected not in text, unexpected


def test_citations_and_bibtex_agree(example_dataset, tmp_path):
    output = tmp_path / "out"
    text = boilerplate_only(example_dataset, output)
    bib = (output / "logs" / "CITATION.bib").read_text()
    keys = re.findall(r"@\w+\{([^,]+),", bib)
    assert keys and "glover1999" in keys and "abraham2014" in keys and "gorgolewski2016" in keys
    assert "holmes1998" not in keys  # no group level was run
    assert "[@" not in text and "(Glover, 1999)" in text.replace("HRF, ", "")
    assert "## References" in text and "https://doi.org/10.1006/nimg.1998.0419" in text
    html = (output / "logs" / "CITATION.html").read_text()
    assert html.count('href="#ref-') >= len(keys) and "<script" not in html and " src=" not in html


def test_every_reference_of_the_bibliography_parses():
    references = boilerplate.read_references()
    assert {"abraham2014", "nilearn", "yarkoni2019", "nibabel", "gorgolewski2016", "glover1999",
            "friston1998", "worsley2002", "holmes1998"} <= set(references)
    for key, entry in references.items():
        assert entry.get("title") and entry.get("author"), key
        assert boilerplate.author_year(entry) and boilerplate.reference(entry)
        # a year, or (archived software) the version it is cited with
        assert entry.get("year") or entry.get("type") == "software", key
        assert "n.d." not in boilerplate.author_year(entry.with_version("1.2.3")), key


def test_the_repository_boilerplate_folder_is_the_packaged_one():
    assert (ROOT / "boilerplate" / "methods.md.jinja").is_file()
    assert (ROOT / "boilerplate" / "references.bib").resolve() == (
        ROOT / "bids_fixedfx" / "data" / "boilerplate" / "references.bib").resolve()


def test_templates_are_package_data(tmp_path):
    """What setuptools puts in a wheel (``build_py``) holds the templates."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "bids_fixedfx", source / "bids_fixedfx",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    (tmp_path / "egg").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info", "--egg-base",
         str(tmp_path / "egg"), "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=source, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    built = tmp_path / "lib" / "bids_fixedfx" / "data"
    for name in ("boilerplate/methods.md.jinja", "boilerplate/references.bib", "report/subject.html.jinja",
                 "report/group.html.jinja", "report/base.html.jinja", "report/macros.html.jinja",
                 "report/report.css"):
        assert (built / name).is_file(), f"{name} would be missing from the wheel (setup.cfg package_data)"


def test_html_keeps_code_spans_apart_from_emphasis():
    references = boilerplate.read_references()
    html = boilerplate.to_html("A contrast (`0.5*a + 0.5*b`), *see* [@glover1999].\n", references)
    assert "<code>0.5*a + 0.5*b</code>" in html and "<em>see</em>" in html
    assert '(<a href="#ref-glover1999">Glover, 1999</a>)' in html


HOSTILE = "audio`[x](https://a\"onmouseover=\"location='javascript:alert(1)'\"y)"


class _Elements(html.parser.HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_reads_names_as_text_whatever_their_backticks_and_quotes():
    """A condition holding a backtick, a link and quotes, fenced by code() with two backticks and
    escaped by plain(): the page made a link of it with an onmouseover attribute (script)."""
    from bids_fixedfx.boilerplate.text import code, plain

    references = boilerplate.read_references()
    page = boilerplate.to_html(f"Conditions {code(HOSTILE)} and {plain(HOSTILE)}, *see* [@glover1999].\n", references)
    elements = _Elements()
    elements.feed(page)
    assert [attrs for _, attrs in elements.tags if set(attrs) - {"lang", "charset", "rel", "href", "class", "id"}] == []
    assert [attrs["href"] for tag, attrs in elements.tags if tag == "a"] == ["#ref-glover1999"] + [
        attrs["href"] for tag, attrs in elements.tags if tag == "a" and attrs["href"].startswith("https://doi.org/")]
    body = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"Conditions {HOSTILE} and {HOSTILE}, see (Glover, 1999)." in body
    assert "<code>audio`[x](https://a&quot;onmouseover=" in page and "<em>see</em>" in page


def test_line_breaks_and_direction_controls_in_names_stay_inside_their_code_span(example_dataset, tmp_path):
    """A contrast named "a\\n\\n## Injected\\n\\n[x](https://evil.example/)": the methods page
    had a heading and a link of it; U+202E reversed the rest of the paragraph in a browser."""
    name = "a\n\n## Injected\n\n[x](https://evil.example/)\n\nb\u202eX"
    text = boilerplate_only(example_dataset, tmp_path / "out", "--contrast", f"{name}=audio")
    page = (tmp_path / "out" / "logs" / "CITATION.html").read_text()
    elements = _Elements()
    elements.feed(page)
    boilerplate_only(example_dataset, tmp_path / "plain", "--contrast", "plain=audio")
    plain = _Elements()
    plain.feed((tmp_path / "plain" / "logs" / "CITATION.html").read_text())
    assert [tag for tag, _ in elements.tags] == [tag for tag, _ in plain.tags]
    assert not [attrs for tag, attrs in elements.tags if tag == "a" and "evil" in attrs.get("href", "")]
    escaped = "a\\n\\n## Injected\\n\\n[x](https://evil.example/)\\n\\nb\\u202eX"
    assert escaped in text and escaped in html.unescape(page) and "\u202e" not in text + page


def test_format_weights():
    assert boilerplate.format_weights({"audio": 1.0}) == "audio"
    assert boilerplate.format_weights({"a": 1.0, "b": -1.0}) == "a - b"
    assert boilerplate.format_weights({"a": -0.5, "b": 0.5, "c": 0.0}) == "-0.5*a + 0.5*b"


def test_group_level_text_is_read_back_from_the_outputs(fresh_dataset, tmp_path):
    dataset = fresh_dataset(subjects=("01", "03"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--no-reports", "--nprocs", "1",
                 "--smoothing-fwhm", "4", "--noise-model", "ols"]) == 0
    assert not list(output.glob("*.html"))
    participant = citation(output)
    assert "5 BOLD runs" in participant and "Group level" not in participant
    # the group level is run with default options: its text must give the participant level's
    assert main([*common, "group", "--group-model", "fixed", "--no-reports"]) == 0
    text = citation(output)
    for expected in ("5 BOLD runs of the checkerboard task from 2 subjects", "1 to 4 runs per subject",
                     "4 mm full width at half maximum", "ordinary least squares",
                     "combined by fixed effects (nilearn's `compute_fixed_effects`, unweighted)",
                     "sub-01 and sub-03", "Six nuisance regressors", "fMRIPrep 23.2.0", "## Group level"):
        assert expected in text, expected
    for absent in ("autoregressive", "5 mm", "one-sample t-test", "--boilerplate-only"):
        assert absent not in text, absent
    assert not (output / "group.html").exists()


def test_the_start_time_of_slice_timed_series_is_stated(fresh_dataset, tmp_path):
    """Runs modelled at their StartTime (the reference slice of slice-timing correction): the text
    did not say so, and nilearn's default (slice_time_ref 0) gives other maps."""
    dataset = fresh_dataset(subjects=("01", "03"))
    for sidecar in (dataset.path / "derivatives").rglob("sub-01_*_desc-preproc_bold.json"):
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "StartTime": 0.95,
                                       "SliceTimingCorrected": True}))
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    said = "The regressors were sampled at the time of each volume's reference slice, 0.95 s after the volume's start"
    participant = citation(output)
    assert main([str(dataset.path), str(output), "group", "--no-reports"]) == 0  # read back from the sidecars
    for text in (participant, citation(output)):
        text = " ".join(text.split())
        assert said in text and "whose sidecar gives a `StartTime` (at its start in the others)" in text
    only = tmp_path / "only"  # sub-03: no StartTime, no sentence
    assert main([str(dataset.path), str(only), "participant", "--skip-bids-validation", "--no-reports",
                 "--participant-label", "03"]) == 0
    assert "reference slice" not in citation(only)


def test_a_parametric_modulation_is_stated(fresh_dataset, tmp_path):
    """Events with a modulation column scale their regressors (nilearn's parametric modulation):
    the maps were right, the text said plain boxcars."""
    import numpy as np
    import pandas as pd

    dataset = fresh_dataset(subjects=("01", "03"))
    modulated = sorted((dataset.path / "sub-01").rglob("*_events.tsv"))
    for path in modulated:
        events = pd.read_csv(path, sep="\t")
        events.assign(modulation=np.linspace(0.5, 1.5, len(events))).to_csv(path, sep="\t", index=False)
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    participant = " ".join(citation(output).split())
    assert main([str(dataset.path), str(output), "group", "--no-reports"]) == 0  # read back from the sidecars
    runs = len(list(output.rglob("sub-*_design.json")))
    for text in (participant, " ".join(citation(output).split())):
        assert (f"each event's boxcar scaled by its value in the events' `modulation` column (parametric "
                f"modulation, in the {len(modulated)} runs whose events files have one)") in text, text
        assert len(modulated) < runs
    only = tmp_path / "only"  # sub-03: no modulation column, no words of it
    assert main([str(dataset.path), str(only), "participant", "--skip-bids-validation", "--no-reports",
                 "--participant-label", "03"]) == 0
    assert "parametric modulation" not in citation(only)


def test_a_model_s_convolve_transformation_is_stated(fresh_dataset, tmp_path):
    """A model that convolves with a ``Convolve`` transformation (the style of FitLins and of the
    BIDS Stats Models examples) has no ``Model.HRF``: both levels' texts said the conditions were
    "convolved with nilearn's 'none' HRF model"."""
    dataset = fresh_dataset(subjects=("01", "03"))
    convolve = {"Transformer": "pybids-transforms-v1", "Instructions": [
        {"Name": "Factor", "Input": ["trial_type"]},
        {"Name": "Rename", "Input": ["trial_type.audio", "trial_type.visual"], "Output": ["audio", "visual"]},
        {"Name": "Convolve", "Input": ["audio", "visual"], "Model": "glover"}]}
    nodes = [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Transformations": convolve,
         "Model": {"Type": "glm", "X": ["audio", "visual", "trans_x", 1]}, "DummyContrasts": {"Test": "t"}},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {"Type": "meta", "X": [1]},
         "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1]},
         "DummyContrasts": {"Test": "t"}},
    ]
    model = tmp_path / "model-convolved_smdl.json"
    model.write_text(json.dumps({"Name": "convolved", "BIDSModelVersion": "1.0.0", "Nodes": nodes}))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output), "-m", str(model)]
    assert main([*common[:2], "participant", *common[2:], "--skip-bids-validation", "--nprocs", "1"]) == 0
    expected = ("convolved with the Glover hemodynamic response function (HRF, Glover, 1999) by the model's "
                "`Convolve` transformation")
    assert expected in citation(output) and "'none'" not in citation(output)
    # the report's model table: the HRF, and the confounds the designs hold (not the convolved conditions)
    page = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", (output / "sub-01.html").read_text())))
    assert "HRF model glover (the model's Convolve transformation)" in page
    assert "Confounds trans_x Noise model" in page
    # and the sidecars' ConfoundsOption: the confounds, not the convolved conditions
    for sidecar in (output / "sub-01").rglob("*_stat-t_statmap.json"):
        assert json.loads(sidecar.read_text())["ConfoundsOption"] == ["trans_x"], sidecar.name
    assert main([*common[:2], "group", *common[2:], "--no-reports"]) == 0
    text = citation(output)
    assert "## Group level" in text and expected in text and "'none'" not in text
    # no HRF at all: said so, not "convolved with 'none'"
    plain = fresh_dataset(subjects=("01",))
    nodes[0] = {**nodes[0], "Transformations": {**convolve, "Instructions": convolve["Instructions"][:2]}}
    model.write_text(json.dumps({"Name": "convolved", "BIDSModelVersion": "1.0.0", "Nodes": nodes[:2]}))
    text = boilerplate_only(plain, tmp_path / "plain", "-m", str(model))
    assert "not convolved with a hemodynamic response function" in text and "'none'" not in text
    # its boxcars are the events' conditions, not nuisance regressors of the confounds tables
    nuisance = re.search(r"nuisance regressors? from the confounds tables[^:]*: [^.]*\.", text).group()
    assert "each condition (`audio` and `visual`)" in text and "audio" not in nuisance and "trans_x" in nuisance


def test_subjects_fitted_with_different_settings_are_not_tested_together(fresh_dataset, tmp_path):
    """The group level refuses them (SPEC §4), so no methods text describes them as one study."""
    dataset = fresh_dataset(subjects=("02", "03"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output)]
    options = ["--skip-bids-validation", "--no-reports", "--nprocs", "1"]
    assert main([*common, "participant", *options, "--participant-label", "02"]) == 0
    assert main([*common, "participant", *options, "--participant-label", "03", "--smoothing-fwhm", "0"]) == 0
    before = citation(output)
    assert "No spatial smoothing was applied" in before
    assert main([*common, "group", "--no-reports"]) == 64
    assert citation(output) == before
    assert not (output / "group").exists()


def test_names_from_the_data_are_never_read_as_markdown_or_html():
    """A trial type "<b>x</b>" was written raw into CITATION.md (bold in a Markdown viewer)."""
    from bids_fixedfx.boilerplate.text import code, plain

    assert code("<b>x</b>") == "`<b>x</b>`" and code("a`b") == "``a`b``" and code("`x") == "`` `x ``"
    assert plain("fMRIPrep 23.1") == "fMRIPrep 23.1" and plain("a_b <i>") == "a\\_b \\<i\\>"


def test_filters_groups_columns_masks_and_reasons_from_the_data_stay_text():
    """An edge's Filter, a GroupBy variable, a design column and --mask's file name were written
    raw (or between backticks a name could close): CITATION.html held <img onerror> and a link."""
    from types import SimpleNamespace as NS

    import pandas as pd

    from bids_fixedfx.boilerplate import facts, render
    from bids_fixedfx.boilerplate.bibtex import read_references
    from bids_fixedfx.boilerplate.markdown import to_html

    evil = "x` <img src=x onerror=alert(1)> [click](https://evil.example/f) `"
    nodes = facts.node_facts([NS(node=NS(name="subject", model_type="meta"), level="subject", source_level="run",
                                 filter={"contrast": (evil,)}, desc=None)])
    dataset = facts.dataset_node_facts([NS(named_plainly=False, node=NS(name="groups", group_by=("contrast", evil)),
                                           design=pd.DataFrame({evil: [1.0], "age": [2.0]}), group_model="random",
                                           precision_weighted=False, inputs=(NS(session=None),))])
    run = facts.RunFacts("01", None, "x", 2.0, 100, ("a",), (), False, True, None, f"{evil}.nii.gz")
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False, mask_given=True)
    first = facts.FirstLevel((run,), model, "MNI152NLin2009cAsym", (facts.contrast_facts("a", {"a": 1.0}, ("a",)),),
                             (facts.LeftOutRun("sub-01_task-x_run-2", f"its events file {evil}.tsv is empty"),),
                             nodes=nodes)
    methods = facts.Methods((first,), facts.GroupLevel("random", (("x", "a", ("01", "02")),), nodes=dataset), True,
                            {"participant": ("bids-fixedfx in out participant",)}, boilerplate.software_versions())
    text = render(methods)
    page = to_html(text, read_references())
    assert text.count("onerror") == 5 and page.count("onerror=alert(1)") == 5  # each name said, as text
    assert "<img" not in page and 'href="https://evil' not in page


def test_contrasts_are_stated_with_their_weights(example_dataset, tmp_path):
    default = boilerplate_only(example_dataset, tmp_path / "a")
    assert "each condition against the implicit baseline" in default
    assert "`audio`: `audio` 1; `visual`: `visual` 1" in default
    given = boilerplate_only(example_dataset, tmp_path / "b", "--contrast", "audioMinusVisual=audio-visual",
                             "--contrast", "half=0.5*audio")
    assert "implicit baseline" not in given
    assert "`audioMinusVisual`: `audio` 1, `visual` -1; `half`: `audio` 0.5" in given


def test_one_subject_reads_right_and_software_has_no_nd(example_dataset, tmp_path):
    text = boilerplate_only(example_dataset, tmp_path / "out", "--participant-label", "01")
    assert "4 BOLD runs of the checkerboard task from 1 subject (sub-01)" in text
    assert "per subject" not in text
    assert "n.d." not in text
    assert "(Abraham et al., 2014; Nilearn contributors, version " in text
    bib = (tmp_path / "out" / "logs" / "CITATION.bib").read_text()
    assert re.search(r"@software\{nilearn,[^@]*version = \{[0-9.]+\}", bib)


def test_a_job_of_some_subjects_says_it_does_not_describe_the_others(example_dataset, tmp_path):
    """One job per subject (a cluster's array): each job's text described its own subject as if it were
    the whole analysis, the maps of the others beside it in OUTPUT_DIR."""
    output = tmp_path / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1",
                 "--no-reports", "--participant-label", "02"]) == 0
    assert "other subject" not in citation(output)
    text = boilerplate_only(example_dataset, output, "--participant-label", "01")
    assert "from 1 subject (sub-01)" in text
    assert "the participant level's command: the maps of 1 other subject in this folder (sub-02) were made by " \
           "other commands" in text
    assert "other subject" not in boilerplate_only(example_dataset, output)


def test_a_group_job_of_some_tasks_says_it_does_not_describe_the_others(two_task_dataset, tmp_path):
    """One group job per task: each job's text described its own task alone, the other task's group
    maps beside them."""
    dataset, output = two_task_dataset(n_subjects=2), tmp_path / "out"
    common = [str(dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--nprocs", "1", "--no-reports"]) == 0
    assert main([*common, "group", "-t", "other", "--nprocs", "1", "--no-reports"]) == 0
    assert "made by other commands" not in citation(output)
    assert main([*common, "group", "-t", "checkerboard", "--nprocs", "1", "--no-reports"]) == 0
    assert "the group maps of task-other in this folder were made by other commands" in citation(output)
    assert main([*common, "group", "--nprocs", "1", "--no-reports"]) == 0
    assert "made by other commands" not in citation(output)


def test_figure_threshold_and_command_are_stated(example_dataset, tmp_path):
    output = tmp_path / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1",
                 "--participant-label", "03", "--report-threshold", "2.5"]) == 0
    text = citation(output)
    assert "z maps are shown thresholded at |z| > 2.5 for display only" in text
    assert "the command `bids-fixedfx " in text and "--report-threshold 2.5`" in text


def test_runs_left_out_and_every_level_s_command_are_stated():
    from bids_fixedfx.boilerplate import facts, render

    run = facts.RunFacts("01", None, "x", 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", "m.nii.gz")
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
    first = facts.FirstLevel(
        (run,), model, "MNI152NLin2009cAsym", (facts.contrast_facts("a", {"a": 1.0}, ("a",)),),
        (facts.LeftOutRun("sub-01_task-x_run-2", "it leaves 0 residual degrees of freedom"),),
    )
    methods = facts.Methods(
        (first,), facts.GroupLevel("random", (("x", "a", ("01", "02")),)), True,
        {"participant": ("bids-fixedfx in out participant --participant-label 01",
                         "bids-fixedfx in out participant --participant-label 02"),
         "group": ("bids-fixedfx in out group",)},
        boilerplate.software_versions(), 3.0, InferenceSettings(n_perm=100, alpha=0.01), "group",
    )
    text = render(methods)
    assert "with 100 sign flips" in text
    assert "the permutation maps are shown where the family-wise error corrected p < 0.01" in text
    # not 'further': the run is among those counted above, and it may be left out of one contrast's maps only
    assert ("One run was left out of its subject's maps (of every contrast, or of the one named): "
            "sub-01_task-x_run-2 (it leaves 0 residual") in text
    assert ("participant level, `bids-fixedfx in out participant --participant-label 01` and "
            "`bids-fixedfx in out participant --participant-label 02`; group level, "
            "`bids-fixedfx in out group`") in text
    assert "1 BOLD run of the x task from 1 subject (sub-01)" in text
    assert "one-sample t-test across subjects" in text


def test_surface_and_cifti_runs_are_described_in_their_own_terms():
    """A CIFTI space's text said its runs were fitted by FirstLevelModel (which reads no CIFTI)
    "at each voxel", and every text said the reports list clusters of voxels (surface reports
    list peak vertices)."""
    from bids_fixedfx.boilerplate import facts, render

    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", None, False)
    contrasts = (facts.contrast_facts("a", {"a": 1.0}, ("a",)),)

    def text(*kinds):
        levels = []
        for space, kind in kinds:
            run = facts.RunFacts("01", None, "x", 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", None,
                                 surface=kind != "volume", cifti=kind == "cifti")
            levels.append(facts.FirstLevel((run,), model, space, contrasts, by_space=len(kinds) > 1))
        return render(facts.Methods(tuple(levels), None, True, {"participant": ("bids-fixedfx in out participant",)},
                                    boilerplate.software_versions(), 3.0))

    cifti = text(("fsLR", "cifti"))
    assert "in the fsLR space (CIFTI grayordinates)" in cifti and "run with nilearn's `FirstLevelModel`" not in cifti
    assert "each grayordinate's time series" in cifti and "at each grayordinate, the AR(1)" in cifti
    assert "within the grayordinates whose series was finite" in cifti and "voxel" not in cifti
    assert "the peak grayordinates beyond that threshold are listed." in cifti
    gifti = text(("fsaverage5", "gifti"))
    assert "each vertex's variance" in gifti and "the peak vertices beyond that threshold are listed." in gifti
    assert "`FirstLevelModel`, within the vertices whose series" in gifti and "voxel" not in gifti
    mixed = text(("MNI152NLin2009cAsym", "volume"), ("fsaverage5", "gifti"))
    assert ("clusters of 20 voxels or more above that threshold are listed (volumes), and the peak vertices beyond "
            "that threshold are listed (surfaces).") in mixed
    assert "clusters of 20 voxels or more above that threshold are listed." in text(("MNI152NLin2009cAsym", "volume"))


def test_group_designs_and_dummy_scans_are_stated():
    from bids_fixedfx.boilerplate import facts, render

    runs = [facts.RunFacts("01", None, "x", 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", "m.nii.gz",
                           dummy_scans=count, dummy_source=source)
            for count, source in ((2, "confounds"), (3, "confounds"), (4, "option"))]
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
    first = facts.FirstLevel(tuple(runs), model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
    methods = facts.Methods((first,), facts.GroupLevel("random", (("x", "a", ("01", "02")),), "ageModel"), True,
                            {"group": ("bids-fixedfx in out group",)}, boilerplate.software_versions())
    text = render(methods)
    assert "In 2 runs, the first 2 to 3 volumes, which fMRIPrep flagged" in text
    assert "In the 1 run without such columns, the first 4 volumes were left out" in text
    assert "general linear model across subjects" in text and "dataset node `ageModel`" in text
    assert "one-sample" not in text
    # a covariate's values are not participants.tsv's once demeaned: said (it said 'of the columns' alone)
    group = facts.GroupLevel("random", (("x", "a", ("01", "02")),), "ageModel", columns=("intercept", "age"),
                             transformed=(("age", "demeaned"), ("dose", "scaled")))
    text = " ".join(render(replace(methods, group=group)).split())
    assert "with the columns `intercept` and `age`, `age` demeaned and `dose` scaled;" in text


@pytest.mark.parametrize(("tasks", "expected"), [
    (("x",), "For the one subject with a single run, the subject's maps are those of the run."),
    (("x", "y"), "Where a subject had a single run of a task (2 of the 3 combinations of a subject and a task), the "
                 "subject's maps for that task are those of the run."),
])
def test_subjects_with_a_single_run_are_counted_once_whatever_their_tasks(tasks, expected):
    """sub-02, one run of each of two tasks, was counted as two subjects with a single run."""
    from bids_fixedfx.boilerplate import facts, render

    runs = [facts.RunFacts(subject, None, task, 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", "m.nii.gz")
            for subject, task in (("01", "x"), ("01", "x"), *(("02", task) for task in tasks))]
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
    first = facts.FirstLevel(tuple(runs), model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
    text = render(facts.Methods((first,), None, True, {"participant": ("bids-fixedfx in out participant",)},
                                boilerplate.software_versions()))
    assert expected in " ".join(text.split())


@pytest.mark.parametrize(("tests", "said"), [
    (("t", "F"), "; the t and F statistics were converted to z and p maps."),
    (("F",), "; the F statistics were converted to z and p maps."),
    (("pass",), "`age` 1. "),  # nothing tested: no statistics to convert
])
def test_a_group_design_says_the_statistics_its_contrasts_make(tests, said):
    from bids_fixedfx.boilerplate import facts, render

    run = facts.RunFacts("01", None, "x", 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", "m.nii.gz")
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
    first = facts.FirstLevel((run,), model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
    made = {"t": facts.contrast_facts("age", {"age": 1.0}, (), "t"),
            "F": facts.contrast_facts("groups", [{"g.a": 1.0}, {"g.b": 1.0}], (), "F"),
            "pass": facts.contrast_facts("age", {"age": 1.0}, (), "pass")}
    group = facts.GroupLevel("random", (("x", "a", ("01", "02", "03")),), "ageModel", columns=("g.a", "g.b", "age"),
                             contrasts=tuple(made[test] for test in tests),
                             passed=("age",) if tests == ("pass",) else ())
    text = " ".join(render(facts.Methods((first,), group, True, {"group": ("bids-fixedfx in out group",)},
                                         boilerplate.software_versions())).split())
    assert "with the columns `g.a`, `g.b` and `age`" in text and said in text
    assert ("statistics were converted" in text) == (tests != ("pass",))


def test_corrected_inference_is_stated(example_dataset, tmp_path):
    text = boilerplate_only(example_dataset, tmp_path / "a", "--threshold", "fdr", "--cluster-extent", "10",
                            "--cluster-inference")
    assert ("each subject-level z map was corrected for multiple comparisons with nilearn: thresholded to "
            "control the false discovery rate at 0.05 (Genovese et al., 2002)") in text
    assert "clusters of fewer than 10 voxels were removed" in text
    assert "clusters formed at z > 3 was bounded at a confidence of 0.95 by all-resolutions inference" in text
    assert "All maps were written unthresholded" not in text
    plain = boilerplate_only(example_dataset, tmp_path / "b")
    assert "All maps were written unthresholded, without correction" in plain and "Genovese" not in plain


def test_the_group_text_keeps_the_subject_level_correction(fresh_dataset, tmp_path):
    """After the group level, CITATION.md said "All maps were written unthresholded" though the
    participant level had written FDR-corrected subject maps beside them."""
    dataset = fresh_dataset(subjects=("01", "03"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--no-reports", "--nprocs", "1",
                 "--threshold", "fdr", "--cluster-inference"]) == 0
    subject = ("each subject-level z map was corrected for multiple comparisons with nilearn: thresholded to control "
               "the false discovery rate at 0.05")
    assert main([*common, "group", "--no-reports"]) == 0
    text = re.sub(r"\s+", " ", citation(output))
    assert subject in text and "by all-resolutions inference" in text and "All maps were written" not in text
    assert "group-level z map" not in text
    assert main([*common, "group", "--no-reports", "--threshold", "bonferroni"]) == 0
    text = re.sub(r"\s+", " ", citation(output))
    assert subject in text and ("; and each group-level z map was corrected for multiple comparisons with nilearn: "
                                "thresholded to control the family-wise error rate at 0.05 by Bonferroni") in text
    plain = tmp_path / "plain"
    assert main([str(dataset.path), str(plain), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    assert main([str(dataset.path), str(plain), "group", "--no-reports"]) == 0
    assert "All maps were written unthresholded, without correction" in re.sub(r"\s+", " ", citation(plain))


def test_the_participant_command_is_read_from_a_subject_sidecar():
    from bids_fixedfx.boilerplate.readback import recorded_command
    from bids_fixedfx.sidecars import StatmapSidecar

    data = {"Sources": [], "Contrast": {"Name": "a", "Weights": {"a": 1}}, "DegreesOfFreedom": 10,
            "SmoothingFWHM": 5, "NoiseModel": "ar1", "HRFModel": "glover", "DriftModel": "cosine", "HighPass": 0.01,
            "FixedEffects": {"PrecisionWeighted": False, "NumberOfRuns": 2}}
    assert recorded_command(StatmapSidecar.from_json(data, "x.json")) is None
    recorded = StatmapSidecar.from_json({**data, "CommandLine": "bids-fixedfx in out participant"}, "x.json")
    assert recorded_command(recorded) == "bids-fixedfx in out participant"


def test_only_the_outputs_own_sources_are_followed(tmp_path):
    """A map's sources in OUTPUT_DIR are its ``bids::`` ones; input datasets' files and names
    that lead out of OUTPUT_DIR are not followed."""
    from types import SimpleNamespace

    from bids_fixedfx.boilerplate.readback import Reader

    design = "sub-01/func/sub-01_task-x_run-01_design.tsv"
    info = SimpleNamespace(sources=(
        "bids:raw:sub-01/func/sub-01_task-x_run-01_events.tsv",
        f"bids::{design}",
        "bids::../../etc/sub-01_task-x_design.tsv",
        "bids::/etc/sub-01_task-x_design.tsv",
        "bids::",
        "sub-01/func/sub-01_task-x_run-02_design.tsv",
    ))
    found = list(Reader(tmp_path)._own_sources(info))
    assert [(str(relative), entities["run"]) for relative, entities in found] == [(design, "01")]



def test_a_source_is_its_resolved_folder_and_its_own_name(tmp_path):
    """A DataLad dataset's files are links into its annex: the file is named as the dataset
    names it, in its folder resolved through links (once per folder)."""
    from bids_fixedfx.boilerplate.readback import Reader

    annexed = tmp_path / "annex" / "MD5E-s1--0cc175b9c0f1b6a831c399e269772661.nii.gz"
    annexed.parent.mkdir()
    annexed.write_bytes(b"a")
    func = tmp_path / "data" / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-x_run-01_bold.nii.gz"
    bold.symlink_to(annexed)
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    output = tmp_path / "out"
    output.mkdir()
    found = Reader(output, links={"raw": "../alias"}).resolve(f"bids:raw:sub-01/func/{bold.name}")
    assert found == func.resolve() / bold.name and found.read_bytes() == b"a"


@pytest.mark.parametrize("kind, name", [
    ("design", "sub-01/ses-1/func/sub-01_ses-1_task-x_run-01_design.tsv"),
    ("run_statmap", "sub-01/func/sub-01_task-x_run-2_space-MNI_contrast-a_stat-effect_statmap.nii.gz"),
    ("run_statmap", "sub-01/func/sub-01_task-x_run-01_hemi-L_space-fsaverage5_contrast-a_stat-effect_statmap.func.gii"),
    ("run_statmap", "sub-01/func/sub-01_task-x_acq-b_run-01_space-fsLR_den-91k_contrast-a_stat-effect_statmap.dscalar.nii"),
])
def test_a_sidecar_name_is_the_file_name_with_json(kind, name):
    from bids_fixedfx import naming
    from bids_fixedfx.boilerplate.readback import _sidecar_of

    entities = naming.parse(name)
    assert naming.build(kind, **entities) == Path(name)
    assert _sidecar_of(name, entities) == naming.build(kind, **{**entities, "extension": ".json"})
    bare = name.split(".")[0]  # a source without extension (a sidecar written by hand): the name + .json
    assert _sidecar_of(bare, naming.parse(bare)) == Path(bare + ".json")


def test_a_full_motion_and_tissue_strategy_names_every_confound():
    """--confounds motion wm_csf (full: 32 columns) was cut at 24 with '...', white_matter left out
    of a text meant to be copied into a manuscript; compcor's dozens are still counted."""
    from bids_fixedfx.boilerplate import facts, render

    motion = [f"{m}_{a}{d}{p}" for m in ("trans", "rot") for a in "xyz" for d in ("", "_derivative1")
              for p in ("", "_power2")]
    tissue = [f"{t}{d}{p}" for t in ("csf", "white_matter") for d in ("", "_derivative1") for p in ("", "_power2")]
    for columns, every in ((motion + tissue, True), ([f"a_comp_cor_{i:02d}" for i in range(100)], False)):
        run = facts.RunFacts("01", None, "x", 2.0, 100, ("a",), tuple(columns), False, True, None, "m.nii.gz")
        model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
        first = facts.FirstLevel((run,), model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
        text = render(facts.Methods((first,), None, False, {"participant": ("bids-fixedfx in out participant",)},
                                    boilerplate.software_versions()))
        assert all(f"`{c}`" in text for c in columns) == every
        assert (f"{len(columns)} columns (" in text) != every


def test_runs_are_counted_per_subject_and_task_when_there_are_several_tasks():
    """Two subjects with one run of each of two tasks: '4 BOLD runs ... 1 run per subject' (each has 2)."""
    from bids_fixedfx.boilerplate import facts, render

    runs = tuple(facts.RunFacts(subject, None, task, 2.0, 100, ("a",), (), False, True, "fMRIPrep 23.2.0", "m.nii.gz")
                 for subject in ("01", "02") for task in ("x", "y"))
    model = facts.ModelFacts("glover", "cosine", 0.01, None, "ar1", 5.0, False)
    first = facts.FirstLevel(runs, model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
    text = render(facts.Methods((first,), None, True, {}, boilerplate.software_versions()))
    assert "4 BOLD runs of the x and y tasks from 2 subjects, 1 run per subject and task" in " ".join(text.split())
    one_task = facts.FirstLevel(runs[::2], model, None, (facts.contrast_facts("a", {"a": 1.0}, ("a",)),))
    text = render(facts.Methods((one_task,), None, True, {}, boilerplate.software_versions()))
    assert "1 run per subject." in " ".join(text.split())


@pytest.mark.parametrize("source", ["bids:raw:/etc/passwd", "bids:raw:../../secret/x.nii.gz", "bids::../outside.json",
                                    "bids::/etc/passwd", "../elsewhere/x.tsv", "bids:raw:"])
def test_a_source_leading_out_of_its_dataset_is_refused(tmp_path, source):
    """A design sidecar of a shared OUTPUT_DIR whose BOLD named a file elsewhere: the group level
    read that file's folder, description and reference image into its methods text and figures."""
    from bids_fixedfx.boilerplate.readback import Reader
    from bids_fixedfx.errors import InputFileError

    reader = Reader(tmp_path / "out", links={"raw": "../bids"})
    assert reader.resolve("bids:raw:sub-01/func/x_bold.nii.gz") == (tmp_path / "bids" / "sub-01" / "func" /
                                                                    "x_bold.nii.gz").resolve()
    with pytest.raises(InputFileError, match=f"The source {re.escape(source)} of a sidecar leads out of"):
        reader.resolve(source)


def test_a_group_design_s_transformed_columns_are_named_as_the_design_names_them():
    """A Scale of age into age_z without rescaling was said 'age scaled': the column is age_z, demeaned."""
    from types import SimpleNamespace

    import pandas as pd

    from bids_fixedfx.boilerplate.readback import _group_transformed
    from bids_fixedfx.model.bsm import Transformation

    node = SimpleNamespace(transformations=(
        Transformation("Scale", ("age",), ("age_z",), {"Rescale": False}),
        Transformation("Scale", ("dose",)),
        Transformation("Demean", ("weight",)),  # not a column of the design: not said
        Transformation("Factor", ("group",)),
    ))
    test = SimpleNamespace(node=node, design=pd.DataFrame(columns=["intercept", "age_z", "dose"]))
    assert _group_transformed([test]) == (("age_z", "demeaned"), ("dose", "demeaned and scaled to unit variance"))
    assert _group_transformed([]) == ()
