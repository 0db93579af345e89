"""The HTML reports: one page per subject and one for the group, self-contained and movable.

The participant and group levels run once on the example dataset; the output folder is then
moved elsewhere, and every page is checked twice: statically (every image and link resolves
relative to the page) and in headless Chromium driven over the DevTools protocol (no request
fails, every image decodes). A full-page screenshot of each page is written for a person to
look at: ``$BIDS_FIXEDFX_SCREENSHOTS`` or ``<tmp>/bids-fixedfx-screenshots``. A subject with
12 runs checks that a page stays short as runs add up. The parts (slices, cluster tables,
quality measures, figures) are tested on arrays.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nibabel as nib
import numpy as np
import pytest

from bids_fixedfx import naming, report
from bids_fixedfx.cli import main

SCREENSHOTS = Path(os.environ.get("BIDS_FIXEDFX_SCREENSHOTS", Path(tempfile.gettempdir()) / "bids-fixedfx-screenshots"))


@pytest.fixture(scope="module")
def reports(example_dataset, tmp_path_factory):
    """Both levels run on the example dataset, then OUTPUT_DIR moved to another folder."""
    output = tmp_path_factory.mktemp("report") / "out"
    common = [str(example_dataset.path), str(output)]
    # sub-99 does not exist: its warning must reach every report
    assert main([*common, "participant", "--skip-bids-validation", "--nprocs", "2",
                 "--participant-label", *example_dataset.subjects, "99"]) == 0
    # three subjects have 8 sign flips: no permutation p can be below 0.125, and the page says so
    assert main([*common, "group", "--n-perm", "20", "--cluster-inference"]) == 0
    moved = tmp_path_factory.mktemp("moved") / "derivatives-copy"
    shutil.move(str(output), moved)
    return moved


def test_a_rerun_without_reports_removes_the_pages_it_outdates(reports, example_dataset, tmp_path, caplog):
    """A rerun with --no-reports removed the subject's figures but left its page, which showed
    the earlier maps and linked missing images; so for the group page."""
    output = tmp_path / "out"
    shutil.copytree(reports, output)
    first = example_dataset.subjects[0]
    assert (output / f"sub-{first}.html").is_file() and (output / "group.html").is_file()
    common = [str(example_dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--no-reports", "--participant-label", first,
                 "--smoothing-fwhm", "8"]) == 0
    assert not (output / f"sub-{first}.html").exists()
    assert all((output / f"sub-{s}.html").is_file() for s in example_dataset.subjects[1:])
    assert f"Removed sub-{first}.html" in caplog.text
    group_page = (output / "group.html").read_text()  # it linked the page removed, until the group level ran again
    assert f'href="sub-{first}.html"' not in group_page and f"<td>sub-{first}</td>" in group_page
    assert all(f'<a href="sub-{s}.html">sub-{s}</a>' in group_page for s in example_dataset.subjects[1:])
    assert (f"{output / 'group'} holds group maps of task-checkerboard computed before this job replaced the maps of "
            f"sub-{first}; rerun the group level to update them.") in caplog.text
    assert list((output / "group" / "figures").glob("*.png"))
    assert main([*common, "group", "--no-reports", "--participant-label", *example_dataset.subjects[1:]]) == 0
    assert not (output / "group.html").exists()
    assert not list((output / "group" / "figures").glob("*"))  # the page's figures went with it
    # a job in a space the group maps are not of outdates none of them (it said to rerun the group level)
    caplog.clear()
    assert main([*common, "participant", "--skip-bids-validation", "--no-reports", "--participant-label", first,
                 "--space", "T1w"]) == 0
    assert "holds group maps" not in caplog.text


@pytest.mark.slow
def test_a_job_that_fails_after_some_subjects_leaves_no_page_of_their_earlier_maps(fresh_dataset, tmp_path):
    """A rerun whose second subject's series is corrupt (exit 66) replaced the first subject's maps
    and figures, and left its page, which showed the earlier settings and linked missing images."""
    dataset = fresh_dataset(subjects=("01", "02"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output), "participant", "--skip-bids-validation"]
    assert main(common) == 0
    assert (output / "sub-01.html").is_file() and (output / "sub-02.html").is_file()
    bold = sorted((dataset.path / "derivatives").rglob("sub-02_*_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
                                                         ))[-1]
    data = bytearray(bold.read_bytes())
    data[-8] ^= 0xFF  # the gzip's checksum: found when the series is read, after sub-01's set is in place
    bold.write_bytes(bytes(data))
    assert main([*common, "--smoothing-fwhm", "3"]) == 66
    assert sidecar_smoothing(output, "01") == 3.0 and sidecar_smoothing(output, "02") == 5.0
    page = output / "sub-01.html"
    assert not page.exists() or all((output / url).exists() for tag, url in links_of(page).urls
                                    if tag == "img" and not url.startswith("data:"))
    assert (output / "sub-02.html").is_file()  # its maps are as they were: so is its page


@pytest.mark.slow
def test_a_job_whose_reports_fail_leaves_no_page_of_the_earlier_maps(fresh_dataset, tmp_path, monkeypatch):
    """Every set in place, then the reports failed: the earlier pages linked figures the sets removed."""
    from bids_fixedfx import workflow

    dataset = fresh_dataset(subjects=("01", "02"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output), "participant", "--skip-bids-validation"]
    assert main(common) == 0

    def failing(*args, **kwargs):
        raise RuntimeError("no font")

    monkeypatch.setattr(workflow, "_write_reports", failing)
    assert main([*common, "--smoothing-fwhm", "3"]) == 1
    assert sidecar_smoothing(output, "01") == 3.0 and sidecar_smoothing(output, "02") == 3.0
    for page in output.glob("sub-*.html"):
        assert all((output / url).exists() for tag, url in links_of(page).urls
                   if tag == "img" and not url.startswith("data:")), page


def sidecar_smoothing(output, subject):
    found = next((output / f"sub-{subject}").rglob("*_contrast-audio_stat-t_statmap.json"))
    return json.loads(found.read_text())["SmoothingFWHM"]


def test_a_group_job_of_another_model_keeps_the_page_of_the_maps_it_left(reports, example_dataset, tmp_path):
    """A group job whose model's tests no page shows (a node grouped by a participants.tsv column)
    removed group.html, whose one-sample maps it left as they were."""
    output = tmp_path / "out"
    shutil.copytree(reports, output)
    before = (output / "group.html").read_text()
    document = json.loads((output / "models" / "model-default_smdl.json").read_text())
    dataset_node = next(node for node in document["Nodes"] if node["Level"] == "Dataset")
    dataset_node.update(Name="bySex", GroupBy=["contrast", "sex"])
    model = tmp_path / "model-bySex_smdl.json"
    model.write_text(json.dumps({**document, "Name": "bySex", "Edges": [
        {**edge, "Destination": "bySex"} if edge["Destination"] == "dataset" else edge
        for edge in document.get("Edges", [])]}))
    assert main([str(example_dataset.path), str(output), "group", "-m", str(model)]) == 0
    assert list((output / "group").glob("*_desc-sex*_statmap.nii.gz"))
    assert (output / "group.html").read_text() == before


def test_a_group_job_of_fixed_effects_without_reports_keeps_the_t_tests_page(reports, example_dataset, tmp_path):
    """``group --group-model fixed --no-reports`` after the one-sample test removed group.html and
    its figures, though it left the one-sample maps they show as they were; the same model's
    job without reports still removes them."""
    from bids_fixedfx.report import shown_maps

    output = tmp_path / "out"
    shutil.copytree(reports, output)
    before = (output / "group.html").read_text()
    figures = sorted((output / "group" / "figures").glob("*.png"))
    assert shown_maps(before) == "group" and figures
    common = [str(example_dataset.path), str(output), "group", "--no-reports"]
    assert main([*common, "--group-model", "fixed"]) == 0
    assert list((output / "group").glob("*_desc-fixedfx_statmap.nii.gz"))
    assert (output / "group.html").read_text() == before
    assert sorted((output / "group" / "figures").glob("*.png")) == figures
    assert main(common) == 0
    assert not (output / "group.html").exists() and not list((output / "group" / "figures").glob("*"))


def test_a_subject_run_by_space_in_two_jobs_keeps_one_page_of_both(tmp_path):
    """A subject run by task or by space in separate jobs kept every job's maps and figures,
    but its page showed only the last job's."""
    from bids_fixedfx.example_data import make_example_dataset

    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=40)
    output = tmp_path / "out"
    page = output / f"sub-{dataset.subjects[0]}.html"

    def job(space):
        assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1",
                     "--space", space]) == 0
        html = page.read_text()
        return {space: html.count(f'<section id="task-checkerboard-space-{space}">')
                for space in ("T1w", "MNI152NLin2009cAsym")}, html

    assert job("T1w")[0] == {"T1w": 1, "MNI152NLin2009cAsym": 0}
    shown, html = job("MNI152NLin2009cAsym")
    assert shown == {"T1w": 1, "MNI152NLin2009cAsym": 1}
    assert "Also shown, as an earlier job wrote them: task checkerboard (space T1w)." in html
    found = links_of(page)
    assert "task-checkerboard-space-T1w" in found.ids
    assert '<a href="#task-checkerboard-space-T1w">checkerboard (T1w)</a>' in html
    for tag, url in found.urls:  # the earlier job's figures and tables are linked as they were
        if not url.startswith(("#", "data:")):
            assert (output / unquote(url)).is_file(), url
    assert job("T1w")[0] == {"T1w": 1, "MNI152NLin2009cAsym": 1}  # each set once, whatever the order
    for path in (output / page.stem).rglob("*space-MNI152NLin2009cAsym*_stat-effect_*"):  # a set gone: its section
        path.unlink()
    shown, html = job("T1w")
    assert shown == {"T1w": 1, "MNI152NLin2009cAsym": 0} and "earlier job" not in html


def test_a_job_without_reports_removes_only_its_own_sections_of_a_page(two_task_dataset, tmp_path):
    """A subject run by task in two jobs, then one task again with --no-reports: the whole page was
    removed, the other task's section (its maps and figures all there) with it."""
    dataset = two_task_dataset()
    output = tmp_path / "out"
    page = output / f"sub-{dataset.subjects[0]}.html"
    common = [str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1"]
    for task in ("checkerboard", "other"):
        assert main([*common, "-t", task]) == 0
    assert main([*common, "-t", "checkerboard", "--no-reports"]) == 0
    html = page.read_text()
    assert 'id="task-checkerboard-space-' not in html and 'id="task-other-space-MNI152NLin2009cAsym"' in html
    assert "Shown, as an earlier job wrote them: task other (space MNI152NLin2009cAsym)." in html
    for tag, url in links_of(page).urls:
        if not url.startswith(("#", "data:")):
            assert (output / unquote(url)).is_file(), url
    assert main([*common, "-t", "other", "--no-reports"]) == 0
    assert not page.exists()  # nothing of an earlier job left to show


def test_a_group_level_run_task_by_task_keeps_one_page_of_all(two_task_dataset, tmp_path):
    """`group -t a` then `group -t b` left group.html showing b only (a's maps and figures stayed,
    unlinked); `group -t b --no-reports` then removed the page and a's figures with b's."""
    dataset = two_task_dataset(n_subjects=2)
    output = tmp_path / "out"
    page = output / "group.html"
    common = [str(dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--nprocs", "1", "--no-reports"]) == 0

    def group(*options):
        assert main([*common, "group", "--nprocs", "1", *options]) == 0
        html = page.read_text() if page.exists() else ""
        for tag, url in links_of(page).urls if html else ():
            if not url.startswith(("#", "data:")):
                assert (output / unquote(url)).is_file(), url
        return html, {task: html.count(f'<section id="task-{task}-space-MNI152NLin2009cAsym">')
                      for task in ("checkerboard", "other")}

    def figures(task):
        return sorted(path.name for path in (output / "group" / "figures").glob(f"task-{task}_*"))

    assert group("-t", "checkerboard")[1] == {"checkerboard": 1, "other": 0}
    shown = figures("checkerboard")
    html, sections = group("-t", "other")
    assert sections == {"checkerboard": 1, "other": 1} and figures("checkerboard") == shown
    assert "Also shown, as an earlier job of the same group model wrote them: task checkerboard" in html
    assert group("-t", "checkerboard")[1] == {"checkerboard": 1, "other": 1}  # each task once, whatever the order
    html, sections = group("-t", "checkerboard", "--no-reports")
    assert sections == {"checkerboard": 0, "other": 1}
    assert not figures("checkerboard") and figures("other")
    assert "Shown, as an earlier job of the same group model wrote them: task other" in html
    # a page of another group model shows that model's maps only
    html, sections = group("-t", "checkerboard", "--group-model", "fixed")
    assert sections == {"checkerboard": 1, "other": 0} and "earlier job" not in html
    assert group("-t", "checkerboard", "--group-model", "fixed", "--no-reports")[1] == {"checkerboard": 0, "other": 0}
    assert not page.exists()


def test_the_group_page_shows_the_group_design_that_was_fitted(reports, example_dataset, tmp_path):
    """With --group-covariates the table headed "Design" showed 1 for every subject and contrast
    (the one-sample layout), not the group.control / group.patient design the sidecars hold."""
    output = tmp_path / "out"
    shutil.copytree(reports, output)
    assert main([str(example_dataset.path), str(output), "group", "--group-covariates", "group"]) == 0
    sidecar = json.loads(next((output / "group").glob("*_stat-t_desc-groupCovariates_statmap.json")).read_text())
    design = sidecar["DesignMatrix"]
    html = (output / "group.html").read_text(encoding="utf-8")
    table = html[html.index('<table class="design">'):]
    table = table[:table.index("</table>")]
    header = re.findall(r'<th class="num">([^<]*)</th>', table)
    assert header == design["Columns"]
    for subject, values in zip(design["Rows"], design["Values"]):
        row = table[table.index(f"sub-{subject}</a>"):]
        cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row[:row.index("</tr>")])
        assert [float(c) for c in cells] == values, subject


def pages(folder):
    return sorted(folder.glob("*.html"))


class _Links(HTMLParser):
    """Every URL a page refers to, and the ids it defines."""

    def __init__(self):
        super().__init__()
        self.urls, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.urls.append((tag, attrs[name]))


def links_of(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


class _Headings(HTMLParser):
    """The levels of a page's headings, in order."""

    def __init__(self):
        super().__init__()
        self.levels = []

    def handle_starttag(self, tag, attrs):
        if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
            self.levels.append(int(tag[1]))


@pytest.mark.slow
def test_headings_never_skip_a_level(reports):
    """The cards under a task's h2 (Model, Conditions ...) and the provenance's were h4: a
    screen reader's outline went from h2 to h4."""
    for page in pages(reports):
        parser = _Headings()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.levels and parser.levels[0] == 1, page.name
        skips = [(a, b) for a, b in zip(parser.levels, parser.levels[1:]) if b > a + 1]
        assert not skips, (page.name, skips)


@pytest.mark.slow
def test_a_report_per_subject_and_one_for_the_group(reports, example_dataset):
    names = {p.name for p in pages(reports)}
    assert names == {f"sub-{s}.html" for s in example_dataset.subjects} | {"group.html"}
    for subject in example_dataset.subjects:
        figures = sorted((reports / f"sub-{subject}" / "figures").glob("*.png"))
        assert figures and all(f.name.startswith(f"sub-{subject}_") for f in figures)
        for figure in figures:  # every name is one the naming authority parses back
            entities = naming.parse(figure.relative_to(reports))
            assert entities["subject"] == subject and entities["extension"] == ".png", figure.name
    assert sorted((reports / "group" / "figures").glob("task-checkerboard_*_desc-zmap_statmap.png"))
    assert sorted((reports / "group" / "figures").glob("task-checkerboard_*_desc-subjects_statmap.png"))


@pytest.mark.slow
def test_the_group_page_and_methods_say_how_few_sign_flips_are_distinct(reports):
    """Three subjects have 8 distinct sign flips: the page and the methods text said 20 permutations,
    and the footer said that no map shown was corrected for multiple comparisons."""
    html = " ".join((reports / "group.html").read_text(encoding="utf-8").split())
    assert "Permutation test: 20 permutations (8 distinct with 3 subjects), family-wise p &lt; 0.05" in html
    assert ('without correction for multiple comparisons, except in the sections headed "Corrected", '
            '"Cluster-level inference" or "Permutation test".') in html
    text = " ".join((reports / "logs" / "CITATION.md").read_text(encoding="utf-8").split())
    assert ("with 20 sign flips (Nichols and Holmes, 2002), of which only 8 are distinct with 3 subjects (so no p "
            "value falls below 1/8)") in text


def test_every_image_and_link_resolves_relative_to_the_page(reports):
    checked = 0
    for page in pages(reports):
        found = links_of(page)
        images = [url for tag, url in found.urls if tag == "img"]
        assert images, f"{page.name} shows no figure"
        for tag, url in found.urls:
            parts = urlsplit(url)
            if url.startswith("data:"):
                continue
            assert not parts.scheme and not parts.netloc, f"{page.name} refers to {url} outside its folder"
            if not parts.path:
                assert parts.fragment in found.ids, f"{page.name}: no id {parts.fragment!r} for {url}"
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.name}: {url} does not resolve"
            assert reports.resolve() in target.parents, f"{page.name}: {url} leaves the output folder"
            checked += 1
    assert checked > 20


@pytest.mark.slow
def test_subject_report_shows_what_the_issue_asks(reports):
    html = (reports / "sub-01.html").read_text(encoding="utf-8")
    for expected in ("ses-1_run-01", "ses-2_run-02", "Runs", "Conditions", "Confounds used", "trans_x",
                     "Warnings", "AR(1)", "5 mm FWHM", "|z| &gt; 3", "Peak z", "mean FD", "max VIF",
                     "in subject mask", "Motion", "Masks", "Provenance", "bids-fixedfx", "nilearn", "pybids",
                     "nibabel", "numpy", "scipy", "--nprocs 2", "<details", "median R²", "Fixed-effects z map of",
                     "Fixed effects"):
        assert expected in html, expected
    assert "t-test" not in html  # the default subject maps are fixed effects over the runs
    assert "4 runs of task checkerboard, combined by fixed effects." in html
    # a subject of one run: its maps are the run's, not combined (said of every subject)
    single = [page.read_text(encoding="utf-8") for page in pages(reports) if page.name.startswith("sub-")]
    assert sum("1 run of task checkerboard, whose maps are the subject&#39;s." in page
               or "1 run of task checkerboard, whose maps are the subject's." in page for page in single) == 1
    figures = [url for tag, url in links_of(reports / "sub-01.html").urls if tag == "img"]
    for kind in ("run-01_desc-design_matrix", "run-01_space-MNI152NLin2009cAsym_desc-rsquared_statmap",
                 "desc-fd_motion", "desc-coverage_mask",
                 "contrast-audio_desc-zmap_statmap", "contrast-audio_desc-runs_statmap"):
        assert any(kind in f for f in figures), kind
    # two figures per run (its design and R² map) and per contrast, not one per run and contrast
    assert len(set(figures)) == 2 * 4 + 2 + 2 * 2
    # every contrast is one click away
    ids = links_of(reports / "sub-01.html").ids
    assert {"task-checkerboard-space-MNI152NLin2009cAsym-contrast-audio",
            "task-checkerboard-space-MNI152NLin2009cAsym-contrast-visual"} <= ids
    assert 'href="#task-checkerboard-space-MNI152NLin2009cAsym-contrast-audio"' in html


@pytest.mark.slow
def test_cluster_tables_have_coordinates_at_the_voxel_size(reports):
    tables = sorted(reports.glob("sub-01/figures/*_desc-clusters_table.tsv"))
    assert tables
    for table in tables:
        lines = table.read_text(encoding="utf-8").splitlines()
        assert lines[0].split("\t")[:4] == ["Cluster", "X (MNI mm)", "Y (MNI mm)", "Z (MNI mm)"]
        for line in lines[1:]:
            x, y, z = line.split("\t")[1:4]
            assert all(v.lstrip("-").isdigit() for v in (x, y, z)), line  # 3 mm voxels: whole mm


@pytest.mark.slow
def test_warnings_reach_the_reports(reports, example_dataset):
    for subject in example_dataset.subjects:
        html = (reports / f"sub-{subject}.html").read_text(encoding="utf-8")
        assert "--participant-label 99 matches no subject and was ignored" in html


@pytest.mark.slow
def test_report_threshold_is_the_one_asked(reports, tmp_path):
    from dataclasses import replace

    from bids_fixedfx import plan
    from bids_fixedfx.cli import parse_settings

    copy = tmp_path / "out"
    shutil.copytree(reports, copy)
    settings = replace(parse_settings([str(tmp_path), str(copy), "group"]), report_threshold=2.5)
    page = report.write_group_report(settings, plan.plan_group(settings))
    assert "|z| &gt; 2.5" in page.read_text(encoding="utf-8")
    assert "|z| &gt; 3" not in page.read_text(encoding="utf-8")


@pytest.mark.slow
def test_group_report_lists_subjects_design_and_contrasts(reports, example_dataset):
    html = (reports / "group.html").read_text(encoding="utf-8")
    for subject in example_dataset.subjects:
        assert f'href="sub-{subject}.html"' in html
    ids = links_of(reports / "group.html").ids
    for condition in example_dataset.conditions:
        assert f"task-checkerboard-space-MNI152NLin2009cAsym-contrast-{condition}" in ids
    assert "One-sample t-test" in html and "the intercept" in html and "participant level" in html
    assert html.count("No voxel survives: the smallest family-wise p is") == len(example_dataset.conditions)
    figures = [url for tag, url in links_of(reports / "group.html").urls if tag == "img"]
    assert len({f for f in figures if "desc-subjects_statmap" in f}) == len(example_dataset.conditions)
    assert html.count("Cluster-level inference: clusters at z &gt; 3, alpha 0.05") == len(example_dataset.conditions)
    without = 0
    for condition in example_dataset.conditions:
        entities = f"task-checkerboard_space-MNI152NLin2009cAsym_contrast-{condition}"
        tdp = nib.load(reports / "group" / f"{entities}_stat-tdp_desc-cluster_statmap.nii.gz").get_fdata()
        assert (f"group/figures/{entities}_desc-tdp_statmap.png" in figures) == bool((tdp > 0).any())
        without += not (tdp > 0).any()
    assert html.count("No cluster holds a true discovery") == without


@pytest.mark.slow
def test_a_correction_no_voxel_passes_is_said_without_a_figure(example_dataset, tmp_path):
    """The figure of an empty corrected map was drawn with a legend of '|z| > 3.75 shown', the top
    of the colour scale, for a threshold of 21.6 (or none at all)."""
    output = tmp_path / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--skip-bids-validation",
                 "--participant-label", "03", "--threshold", "bonferroni", "--alpha", "1e-100"]) == 0
    html = (output / "sub-03.html").read_text(encoding="utf-8")
    said = re.findall(r"No voxel passes the correction \(Bonferroni \(family-wise error rate\), alpha 1e-100: "
                      r"\|z\| ≥ (\d+\.\d+)\)", html)
    assert len(said) == len(example_dataset.conditions) and all(float(z) > 20 for z in said), said
    assert not list((output / "sub-03" / "figures").glob("*_desc-corrected_*"))
    assert all((output / url).exists() for tag, url in links_of(output / "sub-03.html").urls
               if tag == "img" and not url.startswith("data:"))


def test_a_warning_heading_keeps_its_names_capitals():
    """'Fmriprep's non-steady-state columns...': the heading's filter lowered every letter after the first."""
    from bids_fixedfx.notes import KINDS
    from bids_fixedfx.report.pages import _environment

    macros = _environment().get_template("macros.html.jinja").module
    html = str(macros.warnings([{"meaning": KINDS["dummy-scans"], "texts": ["sub-01: 2 volumes"]}]))
    assert "The non-steady-state columns of fMRIPrep&#39;s confounds were used instead of --dummy-scans:" in html
    assert all(meaning.split()[0].islower() for meaning in KINDS.values())  # (none starts with a capitalised name)


def test_the_log_ends_with_where_the_report_is_and_corrected_maps_are_shown(example_dataset, tmp_path, capsys):
    output = tmp_path / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--skip-bids-validation",
                 "--participant-label", "03", "--nprocs", "1", "--threshold", "fdr", "--cluster-inference"]) == 0
    assert str(output / "sub-03.html") in capsys.readouterr().err.strip().splitlines()[-1]
    html = (output / "sub-03.html").read_text(encoding="utf-8")
    assert "Corrected: false discovery rate, alpha 0.05" in html
    assert "contrast-audio_desc-corrected_statmap.png" in html
    figures = output / "sub-03" / "figures"
    assert (figures / "sub-03_task-checkerboard_space-MNI152NLin2009cAsym_contrast-audio_desc-corrected_table.tsv").is_file()
    # the proportion of true discoveries: drawn where it is above 0, its clusters listed
    assert html.count("Cluster-level inference: clusters at z &gt; 3, alpha 0.05") == len(example_dataset.conditions)
    for condition in example_dataset.conditions:
        entities = f"sub-03_task-checkerboard_space-MNI152NLin2009cAsym_contrast-{condition}"
        tdp = nib.load(output / "sub-03" / "func" / f"{entities}_stat-tdp_desc-cluster_statmap.nii.gz").get_fdata()
        table = figures / f"{entities}_desc-tdp_table.tsv"
        assert (f"{entities}_desc-tdp_statmap.png" in html) == table.is_file() == bool((tdp > 0).any())
    assert (tdp > 0).any()  # the example's effects hold true discoveries
    assert len(table.read_text().splitlines()) > 1
    # each cluster's proportion, the point of the table, read at its peak (the table had no such column)
    import pandas as pd

    listed = pd.read_csv(table, sep="\t")
    assert listed.columns[-1] == "TDP" and listed["TDP"].between(0, 1).all() and (listed["TDP"] > 0).all()
    assert set(np.round(listed["TDP"], 3)) <= set(np.round(tdp[tdp > 0], 3))


def test_notes_are_shown_to_the_subjects_they_name():
    from bids_fixedfx.notes import Note

    notes = [
        Note("imputed", "first value of a was n/a", subject="01", task="x", run="sub-01_task-x_run-1"),
        Note("fit", "something", subject="02", task="x"),
        Note("selection", "a general note"),
        Note("fit", "about sub-02, though it names sub-01 in its text", subject="02"),
    ]
    assert report.notes_about(notes, "01") == [notes[0], notes[2]]
    assert report.notes_about(notes, "10") == [notes[2]]


def test_boldref_is_found_beside_the_preprocessed_bold_by_its_entities(tmp_path):
    from bids_fixedfx.report.backgrounds import boldref_of

    (tmp_path / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-x_run-1_space-MNI_desc-preproc_bold.nii.gz"
    bold.write_bytes(b"")
    assert boldref_of(bold) is None
    (func / "sub-01_task-x_run-2_space-MNI_boldref.nii.gz").write_bytes(b"")  # another run
    (func / "sub-01_task-x_run-1_space-T1w_boldref.nii.gz").write_bytes(b"")  # another space
    assert boldref_of(bold) is None
    (func / "sub-01_task-x_run-1_space-MNI_boldref.nii.gz").write_bytes(b"")
    assert boldref_of(bold).name == "sub-01_task-x_run-1_space-MNI_boldref.nii.gz"


def test_drawing_leaves_matplotlib_alone():
    """No process-wide state: figures are drawn without importing (or configuring) matplotlib."""
    code = (
        "import sys, numpy as np\n"
        "from bids_fixedfx.report import figures, slices\n"
        "from bids_fixedfx.report.figures import MapView\n"
        "data = np.zeros((10, 12, 8), np.float32); data[3:6, 4:7, 2:5] = 5\n"
        "grid = slices.Volume(data, np.diag([2.0, 2.0, 2.0, 1.0]))\n"
        "view = MapView(None, data > -1, grid, 3.0, 6.0, template=False)\n"
        "png = figures.stat_map(view, data, [3, 4], 'x')\n"
        "assert png.startswith(b'\\x89PNG')\n"
        "print('matplotlib' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# ----------------------------------------------------------------------------
# the parts, on arrays


def volume(shape=(20, 22, 16), zooms=(3.0, 3.0, 3.0), origin=(-30.05, -33.1, -24.0)):
    import numpy as np

    from bids_fixedfx.report import slices

    affine = np.diag([*zooms, 1.0]).astype(np.float32)
    affine[:3, 3] = origin
    return slices.Volume(np.zeros(shape, np.float32), affine.astype(np.float64))


def test_cluster_table_rounds_coordinates_and_names_the_frame():

    from bids_fixedfx.report import tables

    grid = volume()
    data = grid.data.copy()
    data[2:6, 2:6, 2:6] = 4.0  # 64 voxels
    data[3, 3, 3] = 6.0
    data[12:15, 12:15, 10:13] = -5.0  # 27 voxels
    data[18, 18, 14] = 9.0  # one voxel: too small
    found = tables.cluster_table(type(grid)(data, grid.affine), 3.0, template=False)
    assert found.n_clusters == 2
    assert found.columns[1:4] == ("X (mm)", "Y (mm)", "Z (mm)")
    first, second = [row for row in found.rows if row[5] != ""]
    assert first[:6] == ("1", round(-30.05 + 9), round(-33.1 + 9), -24 + 9, 6.0, 64 * 27)
    assert second[4] == -5.0 and second[5] == 27 * 27
    assert all(isinstance(v, int) for row in found.rows for v in row[1:4])
    assert "X (MNI mm)" in tables.cluster_table(type(grid)(data, grid.affine), 3.0, template=True).columns
    tsv = found.to_tsv()
    assert "17.0499" not in tsv and "\t-21\t" in tsv


def test_slices_are_chosen_through_the_effects():
    import numpy as np

    from bids_fixedfx.report import slices

    data = np.zeros((10, 10, 30), np.float32)
    data[4:6, 4:6, 20:23] = 5
    box = slices.extent(np.ones_like(data))
    cuts = slices.choose_cuts(data, 3.0, 3, box)
    assert len(cuts) == 3 and any(20 <= c <= 22 for c in cuts) and cuts == sorted(cuts)
    assert slices.voxel_decimals([3, 3, 3]) == 0 and slices.voxel_decimals([0.5, 0.5, 0.5]) == 1
    assert slices.round_to_voxels(17.04999828, 0) == 17


def test_native_space_maps_have_no_projections_and_a_labelled_colour_bar():
    import numpy as np
    from PIL import Image

    from bids_fixedfx.report import figures
    from bids_fixedfx.report.figures import MapView

    grid = volume()
    data = grid.data.copy()
    data[5:9, 5:9, 5:9] = 5.0
    mask = np.ones(data.shape, bool)
    native = MapView(None, mask, grid, 3.0, 6.0, template=False)
    template = MapView(None, mask, grid, 3.0, 6.0, template=True)
    width = {name: Image.open(io.BytesIO(figures.stat_map(view, data, [6, 7], "x"))).size[0]
             for name, view in (("native", native), ("template", template))}
    assert width["template"] > width["native"] + 200  # three projections more


@pytest.mark.parametrize("n_confounds", [8, 30])
def test_the_design_figure_names_each_correlated_regressor(monkeypatch, n_confounds):
    """With --confounds motion wm_csf (26 columns and more) the correlation matrix lost its row
    labels and VIF values (cells under 9 px) but kept its "VIF" heading over an empty column."""
    import numpy as np
    import pandas as pd

    from bids_fixedfx.report import figures

    rng = np.random.default_rng(0)
    names = ["audio", "visual"] + [f"conf{i:02d}" for i in range(n_confounds)]
    matrix = pd.DataFrame(rng.normal(size=(100, len(names))), columns=names).assign(constant=1.0)
    written = []
    text = figures.Canvas.text

    def recorded(self, xy, label, *args, **kwargs):
        written.append(str(label))
        return text(self, xy, label, *args, **kwargs)

    monkeypatch.setattr(figures.Canvas, "text", recorded)
    corr = np.corrcoef(matrix[names].to_numpy().T)
    figures.design(matrix, names[:2], names[2:], [("audio", np.eye(len(matrix.columns))[0])],
                   {n: 1.5 for n in names}, (names, corr), None, "x")
    assert "VIF" in written and all(name in written for name in names)
    assert written.count("1.5") == len(names)


def test_variance_inflation_of_a_design_of_many_conditions_is_one_inversion():
    """A design of 100 conditions and 2,000 volumes (trial-wise betas) took 1 to 11 s in each run's
    report section: one regression of the whole design per column. The values are those regressions'."""
    import numpy as np
    import pandas as pd

    from bids_fixedfx.design import Design
    from bids_fixedfx.report import quality

    rng = np.random.default_rng(1)
    names = [f"trial{i:03d}" for i in range(100)]
    matrix = pd.DataFrame(rng.standard_normal((2000, 100)), columns=names)
    matrix["trial001"] += 3 * matrix["trial000"]
    matrix = matrix.assign(**{f"drift_{i}": np.cos(np.pi * (i + 1) * np.arange(2000) / 2000) for i in range(20)},
                           constant=1.0)
    start = time.perf_counter()
    vif = quality.variance_inflation(Design(matrix, tuple(names), ()))
    assert time.perf_counter() - start < 2
    values = matrix.to_numpy()
    for name in ("trial000", "trial001", "trial050"):
        j = list(matrix.columns).index(name)
        others = np.delete(values, j, axis=1)
        residual = values[:, j] - others @ np.linalg.lstsq(others, values[:, j], rcond=None)[0]
        centred = values[:, j] - values[:, j].mean()
        assert vif[name] == pytest.approx(centred @ centred / (residual @ residual), rel=1e-8)
    assert vif["trial000"] > 5 > vif["trial050"] and set(vif) == set(names)


def test_variance_inflation_and_framewise_displacement(tmp_path):
    import numpy as np
    import pandas as pd

    from bids_fixedfx.design import Design
    from bids_fixedfx.report import quality

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(200), rng.standard_normal(200)
    matrix = pd.DataFrame({"a": a, "b": b, "c": a + 0.1 * rng.standard_normal(200), "constant": 1.0})
    vif = quality.variance_inflation(Design(matrix, ("a", "b"), ("c",)))
    assert vif["b"] < 1.1 and vif["a"] > 50 and vif["c"] > 50 and "constant" not in vif
    names, correlations = quality.regressor_correlations(Design(matrix, ("a", "b"), ("c",)))
    assert names == ["a", "b", "c"] and correlations[0, 2] > 0.99

    confounds = tmp_path / "confounds.tsv"
    motion = pd.DataFrame({"trans_x": [0, 1, 1], "trans_y": [0, 0, 0], "trans_z": [0, 0, 0.5],
                           "rot_x": [0, 0.01, 0.01], "rot_y": [0, 0, 0], "rot_z": [0, 0, 0]})
    motion.to_csv(confounds, sep="\t", index=False)

    class Run:
        pass

    run = Run()
    run.confounds = confounds
    fd = quality.framewise_displacement(run).fd
    assert np.isnan(fd[0]) and fd[1:] == pytest.approx([1 + 50 * 0.01, 0.5])
    motion.assign(framewise_displacement=["n/a", 0.2, 0.3]).to_csv(confounds, sep="\t", index=False)
    assert quality.framewise_displacement(run).fd[1:] == pytest.approx([0.2, 0.3])
    # an empty first cell (as nilearn's test-data generator writes it) and text that is no number
    motion.assign(framewise_displacement=["", "0.2", "high"]).to_csv(confounds, sep="\t", index=False)
    fd = quality.framewise_displacement(run).fd
    assert np.isnan(fd[0]) and fd[1] == pytest.approx(0.2) and np.isnan(fd[2])


def test_masks_are_compared_with_the_subject_mask():
    import numpy as np

    from bids_fixedfx.report import quality

    subject = np.zeros((4, 4, 4), bool)
    subject[:2] = True
    run = np.zeros((4, 4, 4), bool)
    run[:3] = True
    fit, missing = quality.mask_fits([run, None], subject)
    assert fit.n_voxels == 48 and fit.kept == pytest.approx(2 / 3) and missing is None


# ----------------------------------------------------------------------------
# Chromium


def chromium_binary():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: the report test opens the pages in headless Chromium "
            "(Debian: apt-get install chromium; .ci/run installs it)."
        )
    return found


class DevTools:
    """A minimal client of Chrome's DevTools protocol over a WebSocket (standard library only)."""

    def __init__(self, url, timeout=60):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response[:200]
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events = []

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (9, 10):  # ping, pong
                continue
            message += payload
            if first & 0x80:
                return json.loads(message)

    def _send(self, text):
        payload = text.encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                return
            self.events.append(self._receive())
        raise TimeoutError(f"no {event} within {timeout} s")

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with its DevTools endpoint on a free local port."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {process.poll()}).")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def open_page(port, url):
    """Load ``url`` in a new tab; return its DevTools events, image check and a PNG screenshot."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        target = json.load(response)
    tab = DevTools(target["webSocketDebuggerUrl"])
    try:
        tab.call("Network.enable")
        tab.call("Page.enable")
        tab.call("Page.navigate", url=url)
        tab.wait_for("Page.loadEventFired")
        images = tab.call(
            "Runtime.evaluate", returnByValue=True,
            expression="Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])",
        )["result"]["value"]
        size = tab.call("Page.getLayoutMetrics")["cssContentSize"]
        height = min(int(size["height"]), 20000)
        shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
        return tab.events, images, base64.b64decode(shot["data"])
    finally:
        tab.close()


@pytest.mark.slow
def test_pages_open_in_chromium_without_a_failed_request(reports, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page in pages(reports) + [reports / "logs" / "CITATION.html"]:
        events, images, screenshot = open_page(browser, page.resolve().as_uri())
        failed = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
        assert not failed, f"{page.name}: failed requests {failed}"
        requested = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        assert requested, f"{page.name}: Chromium reported no request"
        for url in requested:
            assert url.startswith(("file://", "data:")), f"{page.name} requested {url}"
            if url.startswith("file://"):
                assert Path(unquote(urlsplit(url).path)).is_file(), url
        statuses = [e["params"]["response"].get("status", 0) for e in events
                    if e.get("method") == "Network.responseReceived"]
        assert all(s in (0, 200) for s in statuses), f"{page.name}: statuses {statuses}"
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert not broken, f"{page.name}: images that did not load: {broken}"
        assert screenshot.startswith(b"\x89PNG")
        (SCREENSHOTS / f"{page.stem}.png").write_bytes(screenshot)
    print(f"screenshots of the reports: {SCREENSHOTS}")


def small_dataset(root, **counts):
    """The example dataset on the small test grid, in MNI space only, under ``root/bids``."""
    from bids_fixedfx.example_data import make_example_dataset

    return make_example_dataset(root / "bids", shape=(16, 18, 14), spaces=("MNI152NLin2009cAsym",), **counts)


@pytest.fixture(scope="module")
def twelve_runs(tmp_path_factory):
    """One subject with 12 runs (2 sessions of 6), four contrasts, an OLS noise model, participant level
    with reports."""
    root = tmp_path_factory.mktemp("twelve")
    dataset = small_dataset(root, n_subjects=1, n_sessions=2, n_runs=6, n_volumes=40)
    output = root / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1",
                 "--noise-model", "ols",
                 "--contrast", "audio=audio", "--contrast", "visual=visual",
                 "--contrast", "audioMinusVisual=audio-visual", "--contrast", "both=audio+visual"]) == 0
    return output


@pytest.mark.slow
def test_a_twelve_run_page_stays_short_with_everything_reachable(twelve_runs, browser):
    page = twelve_runs / "sub-01.html"
    html = page.read_text(encoding="utf-8")
    found = links_of(page)
    images = {url for tag, url in found.urls if tag == "img"}
    # a design and an R² map per run; motion, masks; a map and a run grid per contrast
    assert len(images) == 2 * 12 + 2 + 4 * 2
    for contrast in ("audio", "visual", "audioMinusVisual", "both"):
        assert f'href="#task-checkerboard-space-MNI152NLin2009cAsym-contrast-{contrast}"' in html
    # the R² maps' captions say what R² is under OLS (they said "pseudo-R² with AR(1)" whatever the model)
    assert html.count("the plain R² of the OLS fit") == 12 and "pseudo-R²" not in html
    events, loaded, _ = open_page(browser, page.resolve().as_uri())
    assert all(complete and width > 0 for _, complete, width in loaded)
    height = page_height(browser, page.resolve().as_uri())
    assert height < 8 * 1000, f"the 12-run page is {height} px tall"
    # a click on a run's R² thumbnail unfolds its R² map, not its design, and not the other runs'
    shown = page_script(browser, page.resolve().as_uri(), """
        const row = document.querySelectorAll('tr.run')[1];
        const before = row.nextElementSibling.offsetHeight;
        row.querySelector('input.rsquared').click();
        const more = row.nextElementSibling;
        [before, more.querySelector('div.rsquared').offsetHeight, more.querySelector('div.design').offsetHeight,
         document.querySelectorAll('tr.run')[0].nextElementSibling.offsetHeight,
         more.querySelector('div.rsquared img').naturalWidth]""")
    folded, r_square, design_shown, other, width = shown
    assert folded == 0 and r_square > 50 and design_shown == 0 and other == 0 and width > 0, shown
    # the bar of links stays one line high, and a section it jumps to starts below it, at any width
    for width in (1280, 600):
        hidden = page_script(browser, page.resolve().as_uri(), """
            const bar = document.querySelector('nav.bar');
            [bar.getBoundingClientRect().height, [...bar.querySelectorAll('a[href^="#"]')].flatMap(a => {
                const target = document.getElementById(a.getAttribute('href').slice(1));
                target.scrollIntoView();
                const below = target.getBoundingClientRect().top >= bar.getBoundingClientRect().bottom - 1;
                return below || window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1
                    ? [] : [a.getAttribute('href')];
            })]""", width=width)
        assert hidden[0] < 60 and hidden[1] == [], (width, hidden)


@pytest.fixture(scope="module")
def permuted(tmp_path_factory):
    """Seven one-run subjects, the group level with a permutation test (all four statistics)."""
    root = tmp_path_factory.mktemp("permuted")
    dataset = small_dataset(root, n_subjects=7, n_sessions=1, n_runs=1, n_volumes=60)
    output = root / "out"
    common = [str(dataset.path), str(output)]
    assert main([*common, "participant", "--skip-bids-validation", "--nprocs", "1", "--no-reports"]) == 0
    assert main([*common, "group", "--n-perm", "100", "--tfce", "--alpha", "0.05"]) == 0
    return output, dataset


@pytest.mark.slow
def test_the_group_page_shows_the_permutation_maps_and_their_clusters(permuted, browser):
    output, dataset = permuted
    page = output / "group.html"
    html = page.read_text(encoding="utf-8")
    images = {url for tag, url in links_of(page).urls if tag == "img"}
    for condition in dataset.conditions:
        figure = f"group/figures/task-checkerboard_space-MNI152NLin2009cAsym_contrast-{condition}_desc-permutation_statmap.png"
        assert figure in images
        for desc in ("permmaxt", "permsize", "permmass", "permtfce"):
            table = output / "group" / "figures" / (
                f"task-checkerboard_space-MNI152NLin2009cAsym_contrast-{condition}_desc-{desc}_table.tsv")
            rows = table.read_text(encoding="utf-8").splitlines()
            assert rows[0].startswith("Cluster\t") and len(rows) > 1, table.name  # the known effect survives
    for text in ("Permutation test: 100 permutations, family-wise p &lt; 0.05", "voxel-level max-t",
                 "cluster size", "cluster mass", "threshold-free cluster enhancement", "sign flipping",
                 "non_parametric_inference", "-log10 p &gt; 1.30", "clusters formed at |z| &gt; 3"):
        assert text in html, text
    assert html.count("permutation voxel-level max-t, family-wise p &lt; 0.05") == len(dataset.conditions)
    _, loaded, _ = open_page(browser, page.resolve().as_uri())
    assert loaded and all(complete and width > 0 for _, complete, width in loaded)


def page_script(port, url, expression, width=1280):
    """The value of a script evaluated in a loaded page (1280 px wide, its images decoded)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        target = json.load(response)
    tab = DevTools(target["webSocketDebuggerUrl"])
    try:
        tab.call("Page.enable")
        tab.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False)
        tab.call("Page.navigate", url=url)
        tab.wait_for("Page.loadEventFired")
        return tab.call("Runtime.evaluate", returnByValue=True, expression=expression)["result"]["value"]
    finally:
        tab.close()


def page_height(port, url):
    return page_script(port, url, "document.documentElement.scrollHeight")


@pytest.mark.slow
def test_a_model_with_an_f_contrast_gets_its_report(tmp_path):
    """An F contrast of a run node is drawn as one weight row per test it joins, and listed
    with its rows in the contrast table."""
    models = Path(__file__).parent / "data" / "models"
    dataset = small_dataset(tmp_path, n_subjects=1, n_sessions=1, n_runs=2, n_volumes=40)
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1",
                 "-m", str(models / "model-twoSample_smdl.json")]) == 0
    page = (output / "sub-01.html").read_text()
    assert "F test of 2 rows" in page
    assert "was not found" not in page  # F tests have run maps only: no subject map is announced missing
    ids = set(re.findall(r'id="([^"]+)"', page))  # the contrasts table linked the F test to a section it has not
    assert [link for link in re.findall(r'href="#([^"]+)"', page) if link not in ids] == []
    assert "(F test: the runs&#39; maps only)" in page or "(F test: the runs' maps only)" in page
    # its section shows each run's map (as z) and peak: it appeared nowhere on the page
    assert 'id="task-checkerboard-space-MNI152NLin2009cAsym-contrast-anyTask"' in page
    assert "(F test)</h4>" in page and re.search(r"peak z: run-01 \d+\.\d\d, run-02 \d+\.\d\d\.", page)
    grid = output / "sub-01" / "figures" / "sub-01_task-checkerboard_space-MNI152NLin2009cAsym_contrast-anyTask_desc-runs_statmap.png"
    assert grid.stat().st_size > 5_000 and grid.name in page
    from PIL import Image  # an F test's z is one-sided: nothing drawn blue, as if an effect of opposite sign

    rgb = np.asarray(Image.open(grid).convert("RGB")).astype(int)
    assert not ((rgb[..., 2] > 150) & (rgb[..., 2] - rgb[..., 0] > 80)).any()
    assert (rgb[..., 0] - rgb[..., 2] > 80).any()  # its positive z, red to yellow
    assert "<code>trial_type.audio</code>&nbsp;1); (<code>trial_type.visual</code>&nbsp;1)" in page
    design_figures = list((output / "sub-01" / "figures").glob("*_desc-design_matrix.png"))
    assert len(design_figures) == 2


def test_an_unreadable_bold_reference_leaves_the_figures_over_the_bold(tmp_path, capsys):
    """An empty _boldref.nii.gz (the BIDS examples' placeholders) stopped the reports after every
    map was written (exit 1, 'Processing failed: Empty file')."""
    dataset = small_dataset(tmp_path, n_subjects=1, n_sessions=1, n_runs=2, n_volumes=40)
    emptied = sorted(dataset.path.rglob("*_boldref.nii.gz"))
    assert emptied
    for path in emptied:
        path.write_bytes(b"")
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1"]) == 0
    assert f"The BOLD reference {emptied[0]} cannot be read" in capsys.readouterr().err
    assert "over the first volume of the BOLD series" in (output / "sub-01.html").read_text()


def test_names_lose_their_bidirectional_controls_on_the_pages():
    """A contrast named with U+202E (right-to-left override) reversed the page's own text after
    it (the navigation's "Provenance" read "ecnanevorP"); escaping alone keeps the character."""
    from markupsafe import Markup

    from bids_fixedfx.report.pages import _environment

    page = _environment().from_string("<p>{{ name }}</p><nav>Provenance</nav>{{ safe }}")
    html = page.render(name="\u202e<b>face\u2066", safe=Markup("<i>\u202ek</i>"))
    assert html == "<p>&lt;b&gt;face</p><nav>Provenance</nav><i>k</i>"


def test_the_masks_figure_cuts_through_where_the_runs_masks_disagree():
    """Five evenly spaced slices missed the top slices where two of four runs' masks ended."""
    import numpy as np

    from bids_fixedfx.report import slices
    from bids_fixedfx.report.subject import coverage_cuts

    count = np.zeros((20, 20, 40), int)
    count[4:16, 4:16, 5:35] = 4
    count[4:16, 4:16, 33:35] = 2  # the top two slices: in two runs' masks only
    box = slices.extent(count > 0)
    cuts = coverage_cuts(count, 4, box)
    assert len(cuts) == 5 and ({33, 34} & set(cuts))
    assert not ({33, 34} & set(slices.even_cuts(box, 5)))
    agreeing = coverage_cuts(np.where(count > 0, 4, 0), 4, box)  # no disagreement: evenly spaced slices
    assert len(agreeing) == 5 and min(np.diff(agreeing)) >= 5 and box[2].start < agreeing[0] < agreeing[-1] < 36


@pytest.mark.slow
def test_a_job_without_reports_over_one_space_keeps_the_other_spaces_section(tmp_path):
    """A run fitted in two spaces, then one space again with --no-reports: the job removed the run's
    design figure (it has no space), and the page dropped the other space's section with it."""
    from bids_fixedfx.example_data import make_example_dataset

    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, n_volumes=40,
                                   shape=(12, 12, 12), spaces=("MNI152NLin2009cAsym", "T1w"))
    output = tmp_path / "out"
    common = [str(dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "1"]
    assert main([*common, "--space", "MNI152NLin2009cAsym", "T1w"]) == 0
    design = sorted((output / "sub-01" / "figures").glob("*_desc-design_matrix.png"))
    assert design
    assert main([*common, "--space", "T1w", "--no-reports"]) == 0
    assert all(path.is_file() for path in design)
    page = (output / "sub-01.html").read_text()
    assert "space-MNI152NLin2009cAsym" in page and design[0].name in page
    assert 'id="task-checkerboard-space-MNI152NLin2009cAsym"' in page
    assert 'id="task-checkerboard-space-T1w"' not in page  # this job's own section went


@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", '<img src="x.png" onerror="alert(2)">',
                                     '<a href=" JaVa\nScRiPt:alert(3)">x</a>', "<svg onload=alert(4)></svg>",
                                     '<iframe srcdoc="&lt;script&gt;"></iframe>',
                                     # what loads or leads out of OUTPUT_DIR was carried over too
                                     '<img src="https://evil.example/pixel.png">', '<a href="file:///etc/passwd">x</a>',
                                     '<img src="../x.png">', '<a href="//evil.example/">x</a>',
                                     '<p style="background:url(https://evil.example/p)">x</p>',
                                     '<img src="x.png" srcset="https://evil.example/p.png 2x">',
                                     '<a href="/etc/passwd">x</a>', '<img src="sub-01/..\\..\\x.png">'])
def test_an_earlier_section_holding_active_markup_is_not_carried_over(tmp_path, caplog, payload):
    """A page of a shared OUTPUT_DIR edited to hold a script in another task's section: the next
    job's page carried the section over as it was, script and all."""
    from bids_fixedfx.report.pages import earlier_sections

    (tmp_path / "x.png").write_bytes(b"")

    def marked(task, body):
        return f"<!--set task-{task} section--><section><p>{task}</p>{body}</section><!--/set task-{task} section-->"

    text = marked("evil", payload) + marked("kind", '<img src="x.png" alt="a map">')
    with caplog.at_level("WARNING"):
        kept = earlier_sections(tmp_path, text, set(), lambda task, space: True)
    assert [s.task for s in kept] == ["kind"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "The section of task evil, space none in a page of" in said[0] and \
        "holds markup the app never writes" in said[0]


def _other_job_once_read(read, out, other, arguments):
    """``read`` (a page's earlier sections), then, the first time, another job of the app
    started (into ``other``): let finish when this job reads without holding the lock of
    OUTPUT_DIR, else left waiting for its turn."""
    import fcntl

    def reading(*args, **kwargs):
        found = read(*args, **kwargs)
        if not other:
            other.append(subprocess.Popen([sys.executable, "-m", "bids_fixedfx", *arguments],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            handle = os.open(out, os.O_RDONLY)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: this job reads without a turn
                fcntl.flock(handle, fcntl.LOCK_UN)
                other[0].wait(timeout=300)
            except BlockingIOError:
                pass  # this job's turn: the other one waits for it
            finally:
                os.close(handle)
        return found

    return reading


def test_jobs_of_one_subject_beside_each_other_keep_both_sections(fresh_dataset, tmp_path, monkeypatch):
    """Per-space (or per-task) jobs of one subject started together each read the page before
    the other wrote it, so the page kept one job's section. Here the other job starts once this
    one has read the earlier page, and writes its page after this one's (it waits its turn;
    without the turn, it is let finish first)."""
    from bids_fixedfx.cli import main
    from bids_fixedfx.report import subject as subject_report

    dataset = fresh_dataset(subjects=("01",))
    out = tmp_path / "out"
    common = ["--skip-bids-validation", "--nprocs", "1", "--participant-label", "01"]
    other = []
    monkeypatch.setattr(subject_report, "earlier_sets", _other_job_once_read(
        subject_report.earlier_sets, out, other, [str(dataset.path), str(out), "participant", *common, "--space", "T1w"]))
    assert main([str(dataset.path), str(out), "participant", *common, "--space", "MNI152NLin2009cAsym"]) == 0
    _, stderr = other[0].communicate(timeout=300)
    assert other[0].returncode == 0, stderr
    page = (out / "sub-01.html").read_text()
    for space in ("MNI152NLin2009cAsym", "T1w"):
        assert f'id="task-checkerboard-space-{space}"' in page, space


def test_group_jobs_beside_each_other_keep_both_sections(fresh_dataset, tmp_path, monkeypatch):
    """As per-space jobs of one subject: group jobs of two spaces started together (the page
    read by one, written by the other meanwhile) kept one job's section of group.html."""
    from bids_fixedfx.cli import main
    from bids_fixedfx.report import group as group_report

    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports", "--nprocs",
                 "1", "--space", "MNI152NLin2009cAsym", "T1w"]) == 0
    other = []
    monkeypatch.setattr(group_report, "earlier_group_sets", _other_job_once_read(
        group_report.earlier_group_sets, out, other,
        [str(dataset.path), str(out), "group", "--nprocs", "1", "--space", "T1w"]))
    assert main([str(dataset.path), str(out), "group", "--nprocs", "1", "--space", "MNI152NLin2009cAsym"]) == 0
    _, stderr = other[0].communicate(timeout=300)
    assert other[0].returncode == 0, stderr
    page = (out / "group.html").read_text()
    for space in ("MNI152NLin2009cAsym", "T1w"):
        assert f'id="task-checkerboard-space-{space}"' in page, space


def test_a_group_job_without_reports_leaves_the_figures_of_other_spaces(fresh_dataset, tmp_path):
    """A --no-reports group job removed every figure its page did not link: the figures a group job
    of another space (or task) beside it had just drawn, before writing its page."""
    from bids_fixedfx.cli import main

    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports", "--nprocs",
                 "1", "--space", "MNI152NLin2009cAsym", "T1w"]) == 0
    group = [str(dataset.path), str(out), "group", "--nprocs", "1", "--space"]
    assert main([*group, "MNI152NLin2009cAsym"]) == 0
    mine = sorted((out / "group" / "figures").glob("*space-MNI152NLin2009cAsym*"))
    drawn = out / "group" / "figures" / "task-checkerboard_space-T1w_contrast-audio_desc-z_map.png"
    drawn.write_bytes(mine[0].read_bytes())  # the other job's figure, not on the page yet
    assert main([*group, "MNI152NLin2009cAsym", "--no-reports"]) == 0
    assert drawn.is_file() and not [path for path in mine if path.exists()]


def test_a_group_rerun_removes_the_figures_its_page_no_longer_shows(reports, example_dataset, tmp_path):
    """A rerun without --threshold left the earlier corrected figures and tables beside the page."""
    output = tmp_path / "out"
    shutil.copytree(reports, output)
    figures = output / "group" / "figures"
    common = [str(example_dataset.path), str(output), "group"]
    assert main([*common, "--threshold", "fdr"]) == 0
    assert list(figures.glob("*_desc-corrected_*"))
    assert main(common) == 0
    assert not list(figures.glob("*_desc-corrected_*"))
    page = (output / "group.html").read_text(encoding="utf-8")
    kept = sorted(figures.iterdir())
    assert kept and all(f"group/figures/{path.name}" in page for path in kept)  # every one left is shown


def test_a_contrast_heading_names_its_files_when_its_label_differs(reports, example_dataset, tmp_path):
    """--group-covariates headings read audio_mean while the files are named contrast-audioMean."""
    output = tmp_path / "out"
    shutil.copytree(reports, output)
    assert main([str(example_dataset.path), str(output), "group", "--group-covariates", "age"]) == 0
    page = (output / "group.html").read_text(encoding="utf-8")
    assert "<h4>audio_mean <small>(files: contrast-audioMean)</small></h4>" in page
    assert list((output / "group").glob("*_contrast-audioMean_stat-t_desc-groupCovariates_statmap.nii.gz"))


@pytest.mark.parametrize("text", ["alpha 0.05: |z| ≥ 2.98", "median R² 0.31", "27 mm³", "−4.07 – 4.79", "2 × 2"])
def test_figure_text_has_no_character_the_font_lacks(text):
    """Pillow's own font has no ≥, ², ³, – or −: the corrected maps' titles read "|z| ▯ 2.98"."""
    from PIL import Image, ImageDraw

    from bids_fixedfx.report.draw import Canvas, drawable

    canvas = Canvas(10, 10)
    font = canvas.font(14)

    def glyph(character):
        image = Image.new("L", (40, 30), 0)
        ImageDraw.Draw(image).text((5, 5), character, font=font, fill=255)
        return np.asarray(image)

    missing = glyph("\uffff")  # a character no font of this kind has: its empty box
    assert not [c for c in drawable(text) if c != " " and np.array_equal(glyph(c), missing)]
    assert [c for c in text if c != " " and np.array_equal(glyph(c), missing)]  # the font lacks some as given


@pytest.mark.parametrize("threshold, vmax", [(4.07, 4.79), (3.0, 6.0), (0.1, 0.12)])
def test_colour_bar_labels_do_not_overlap(threshold, vmax):
    """A threshold near the peak wrote '-4.79-4.07' and '4.074.79' on one line (a minus sign lost)."""
    from bids_fixedfx.report.draw import Canvas, colour_bar

    canvas, written = Canvas(300, 60), []
    draw = canvas.text
    canvas.text = lambda xy, text, size=11, fill=None, anchor="la": (written.append((xy, text, size, anchor)),
                                                                      draw(xy, text, size, anchor=anchor))
    colour_bar(canvas, (40, 25), 220, threshold, vmax)
    labels = [(xy, text, size, anchor) for xy, text, size, anchor in written if text != "z"]
    assert sorted(text for _, text, _, _ in labels) == sorted(f"{v:.3g}" for v in (-vmax, -threshold, threshold, vmax))
    for line in {xy[1] for xy, *_ in labels}:
        spans = sorted((xy[0] - canvas.text_width(text, size) / 2, xy[0] + canvas.text_width(text, size) / 2)
                       for xy, text, size, _ in labels if xy[1] == line)
        assert all(left > right for (_, right), (left, _) in zip(spans, spans[1:])), spans
