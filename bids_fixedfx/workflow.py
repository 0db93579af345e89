"""The two analysis levels, coordinated: discover -> plan -> glm -> nodes (combine) -> outputs -> report.

This module computes nothing and decides no rule itself: each step is the module named
for it. Everything that can be wrong with the input is checked (by :mod:`.plan`) before
the first file is written; each subject's files are written as one set that replaces
its earlier set (:class:`.outputs.Staging`).
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import math
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from . import (combine, discover, forked, glm, inference, locations, naming, nodes, outputs, plan, progress, sidecars,
               surface)
from .errors import FixedFxError, UsageError
from .notes import Note, Repeats, said_once

logger = logging.getLogger("bids_fixedfx")

#: What planning and fitting import (nilearn loads scikit-learn and SciPy with them): with
#: more than one core, imported while a forked child selects the runs (:mod:`.forked`).
FITTING_MODULES = ("nilearn.glm.first_level", "nilearn.glm.regression", "nilearn.glm.contrasts",
                   "nilearn.masking", "scipy.ndimage")

#: What the group level's statistics import (nilearn's GLM loads scikit-learn, SciPy and the
#: rest of nilearn): with more than one core, imported while a forked child plans the tests.
GROUP_MODULES = ("nilearn.glm.regression", "nilearn.glm.contrasts", "nilearn.masking")

#: Threads reading the next run: one decompresses, two smooth and mask the volumes it
#: hands on (decompressing and smoothing release the GIL, so they run beside the fit).
READ_THREADS = 3


def run_level(settings, fork: bool = False) -> None:
    """Run the analysis level the settings ask for (``fork``: see :func:`run_participant` and
    :func:`run_group`).

    BLAS computes on one thread meanwhile: NumPy's from the start (the children forked keep
    the setting), SciPy's once nilearn has loaded it (:func:`_beside_imports`). Outside the
    fit, which sets its own threads, its products are small (a design's rank and SVD, a group
    design's fit), and on a busy machine, an HPC node shared with other jobs, BLAS's waiting
    threads made each such call last 0.5-1.2 s instead of 0.02 s (a 2,000 x 150
    ``matrix_rank`` at a load of 4 on 2 cores: a second or so for every run planned).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if settings.analysis_level == "participant":
            run_participant(settings, fork)
        else:
            run_group(settings, fork)


def run_participant(settings, fork: bool = False) -> None:
    """Fit every selected run, combine each subject's runs, write it all.

    With ``fork``, ``--nprocs`` above 1 and nilearn not loaded yet, the runs are selected in a
    forked child while this process loads nilearn, and the child then reads the first run
    (:mod:`.forked`, :func:`_read_first`).
    """
    discover.check_bids_dir(settings.bids_dir)
    derivatives = settings.derivatives or discover.find_derivatives(settings.bids_dir, settings.output_dir)
    locations.check_locations(settings.bids_dir, settings.output_dir, settings.work_dir, derivatives,
                              settings.bids_database_dir, subjects=settings.participant_label or None)
    made = not settings.output_dir.exists()
    try:
        with locations.scratch(settings.work_dir):
            _participant(settings, derivatives, fork)
    except BaseException:
        if made:  # the sets staged in it were discarded: a folder this job made, empty, goes too
            outputs.remove_if_empty(settings.output_dir)
        raise


def _participant(settings, derivatives, fork):
    """:func:`run_participant` once the locations are checked."""
    with _validation(settings):  # the validator first: it uses a core that pybids' import leaves idle
        discover.check_descriptions(settings.bids_dir, derivatives)
        then = None if settings.boilerplate_only else _read_first
        with _beside_imports(_select, settings, FITTING_MODULES, fork, then, "Selecting the runs") as selecting:
            model, settings, selection = selecting.result()
            checked = plan.plan_runs(selection, settings, model)
            if checked.runs and checked.runs[0].run.bold == selection.runs[0].bold:
                ahead = selecting.then_result()
            else:  # planning left the run read ahead out: the child is ended, not waited for
                ahead = None
    for text in said_once(map(str, checked.notes)):  # a note about every run: said once, and the others named
        logger.warning("%s", text)
    default = model is None  # the model the options define, written for -m
    looked_for = {}  # the conditions of an earlier default model looked for in other events files (and found?)
    if default:
        model, reason = plan.default_model(checked, settings, looked_for)
        if model is None:
            logger.info("No model file is written: %s.", reason)
            earlier = settings.output_dir / naming.build("model", model="default")
            if earlier.is_file():  # the sidecars of this job's maps cite no model file
                logger.warning("%s, which an earlier job wrote, does not describe this job's maps (%s); do not pass "
                               "it with -m to remake them.", earlier, reason)
    logger.info(
        "%d run(s) of %d subject(s) (%s), space %s",
        len(checked.runs), len({s.subject for s in checked.subjects}),
        ", ".join(sorted({s.task for s in checked.subjects})), " and ".join(s or "none" for s in checked.spaces),
    )
    if settings.boilerplate_only:
        _settle_datasets(settings)
        _said_boilerplate(_write_boilerplate(settings, checked, None,
                                             undescribed=_other_subjects(settings.output_dir, checked)))
        return

    _check_other_sessions(checked, settings)
    _check_other_resolution(checked, settings)
    _check_shared_designs(checked, settings)
    settings = replace(settings, derivatives=tuple(derivatives))
    # the dataset's files and the model's copy are written with the first set: a run that fails
    # in its fit (a mask nilearn computes empty) leaves OUTPUT_DIR as it was, and a job stopped
    # before it leaves the earlier copy
    first_set = True
    seen_copy = _text_or_none(settings.output_dir / _model_copy(model)) if model is not None else None
    if model is not None:
        _warn_replaced_model(model, settings, checked, merged=default and plan.same_default_options(checked, settings))
    model_file = _model_copy(model) if model is not None else None
    settings = replace(settings, model_file=model_file, datasets=_datasets(settings),
                       model_node_names={n.level: n.name for n in model.nodes} if model else {})
    fitted = _fit_all(checked.runs, settings, ahead)
    del ahead  # the first run's series: freed once fitted
    total, done, notes, repeats = len(checked.runs), 0, list(checked.notes), Repeats()
    subject_steps = [step for step in checked.steps if step.level == "subject"]
    f_tests = list(dict.fromkeys(c.name for subject in checked.subjects for run_plan in subject.runs
                                 for c in run_plan.contrasts if c.test == "F"))
    if f_tests and any(step.level != "run" for step in checked.steps):
        logger.info("%s %s F test%s: %s maps are the runs' (%s nodes combine t contrasts).", ", ".join(f_tests),
                    "is an" if len(f_tests) == 1 else "are", "" if len(f_tests) == 1 else "s",
                    "its" if len(f_tests) == 1 else "their",
                    " and ".join(dict.fromkeys(step.level for step in checked.steps if step.level != "run")))
    unreported = set()  # sets whose subject node let none of their runs through: no subject maps to show
    started = time.perf_counter()
    ordinals = {label: n for n, label in enumerate(dict.fromkeys(s.subject for s in checked.subjects), start=1)}
    with _pages_pruned_on_failure(settings, checked) as committed:  # a job stopped after some subjects' sets,
        # or in their reports
        for subject in checked.subjects:
            key = naming.set_key(subject=subject.subject, task=subject.task, space=subject.space)
            with outputs.Staging(settings.output_dir, key) as staging:
                results = []
                for run_plan in subject.runs:
                    _, result, seconds = next(fitted)
                    done += 1
                    elapsed = time.perf_counter() - started
                    logger.info("[%d/%d] %s fitted in %.1f s%s", done, total, run_plan.run.name, seconds,
                                progress.remaining(done, total, elapsed))
                    for text in result.notes:
                        if repeats.say(text):  # a note about every run: said a few times, the others named at the end
                            logger.warning("%s", text)
                        notes.append(Note.for_run(run_plan.run, "fit", text))
                    write_run(run_plan, result, staging, settings, levels={s.level for s in checked.steps})
                    results.append(result if len(subject.runs) == 1 else _kept_for_combining(result))
                made = nodes.node_maps(checked.steps, subject, results, settings.model.precision_weighted)
                if subject_steps and not any(maps.step.level == "subject" for maps in made):
                    unreported.add(subject)
                    space = f" space-{subject.space}" if subject.space else ""
                    text = (f"sub-{subject.subject} task-{subject.task}{space}: the model's subject node "
                            f"({subject_steps[0].node.name}) takes none of its runs (its Filter), so it has run maps "
                            "only, and no subject report section")
                    if repeats.say(text):
                        logger.warning("%s", text)
                    notes.append(Note("subject-left-out", text, subject=subject.subject, task=subject.task))
                for maps in made:
                    write_node(maps, staging, settings)
                stale = outputs.existing_set(
                    settings.output_dir, f"sub-{subject.subject}", subject=subject.subject, task=subject.task,
                    space=(subject.space, None),
                )
                if not settings.reports:  # the figures of no space (a run's design) serve another space's section too
                    stale = _without_shared_figures(stale, settings.output_dir, subject)
                if first_set:
                    settings = _settle_datasets(settings, staging)
                staging.commit(stale)
                committed.append(subject)
                if first_set and model is not None:  # once the maps that cite it are in place: a set that fails to
                    _write_model_copy(model, default, checked, settings, looked_for,  # move leaves the earlier copy
                                      seen=seen_copy)
                first_set = False
            for maps in made:
                logger.info("sub-%s%s task-%s%s: node %s (%s) over %d input(s) written (subject %d of %d)",
                            subject.subject, f" ses-{maps.session}" if maps.session else "", subject.task,
                            f" space-{subject.space}" if subject.space else "",
                            maps.step.node.name, "fixed effects" if maps.step.node.model_type == "meta" else "OLS",
                            len(maps.runs), ordinals[subject.subject], len(ordinals))
        for text in repeats.rest():
            logger.warning("%s", text)
        for text in _group_maps_outdated_by(settings.output_dir, checked):
            logger.warning("%s", text)
        _write_boilerplate(settings, checked, None, undescribed=_other_subjects(settings.output_dir, checked))
        reports = settings.reports and subject_steps and not any(step.desc for step in subject_steps)
        if settings.reports and not reports:
            logger.info("No subject report: %s.",
                        "the model has several subject nodes, and a report shows one node's maps" if subject_steps
                        else "the model's run node makes F tests only, which no subject node combines")
        if reports:
            fitted.close()  # its reader thread ended: the reports may fork
            shown = tuple(s for s in checked.subjects if s not in unreported)
            _write_reports(settings, replace(checked, subjects=shown), notes, fork)
        else:  # an earlier job's page would show maps and figures this job replaced: its other sections stay
            _prune_subject_pages(settings, checked)
    pages = [settings.output_dir / naming.build("subject_report", subject=s)
             for s in dict.fromkeys(subject.subject for subject in checked.subjects if subject not in unreported)
             ] if reports else []
    logger.log(progress.SUMMARY, "Participant level done in %s: %d run(s) of %d subject(s) in %s%s%s",
               progress.duration(time.perf_counter() - started), total, len({s.subject for s in checked.subjects}),
               settings.output_dir, _warnings_above(notes),
               f"; report: {pages[0]}" + (f" and {len(pages) - 1} more" if len(pages) > 1 else "") if pages else "")


def _warnings_above(notes=()) -> str:
    """How many warnings the job said, for its closing line (counted by the command's logging;
    else its notes, each said once)."""
    counted = progress.warnings_above()
    if counted is not None:
        return counted
    return f" ({len(set(map(str, notes)))} warning(s) above)" if notes else ""


@contextmanager
def _beside_imports(function, settings, modules, fork, then, doing):
    """``function(settings)`` as a :class:`.forked.Forked` call, made in a forked child while
    this process imports ``modules`` (nilearn's, for what follows) when ``fork``, ``--nprocs``
    is above 1 and they are not loaded yet; else in this process, by ``result()``. ``doing``
    names the call in the ``-v`` line.

    When it forks (the command's start-up), Python's cycle collector is paused meanwhile, and
    the objects made so far are then frozen out of its reach (:func:`gc.freeze`): the modules
    live to the end, and each full collection walked all of them (three or four of 0.03-0.12 s
    fell in these imports, and a forked child copied every page one touched). The child keeps
    the pause for its short task. A caller's own process (no fork) keeps its collector as it is.

    ``modules`` are imported before ``function`` is called when it is not forked, and BLAS
    computes on one thread through the block (:func:`run_level`), SciPy's included, which
    nilearn loads with them (nilearn's design matrices take a SciPy SVD each).
    """
    from threadpoolctl import threadpool_limits

    beside = fork and settings.nprocs > 1 and any(name not in sys.modules for name in modules)
    paused = beside and gc.isenabled()
    if paused:
        gc.disable()
    try:
        if beside:
            importlib.import_module("bids.layout")  # both need pybids: imported once, before forking
        with forked.Forked(function, settings, fork=beside, then=then) as call:
            if call.pid is not None:
                logger.debug("%s in process %d while nilearn loads", doing, call.pid)
            for name in modules:  # without a fork, before the call: SciPy's BLAS is then loaded, and limited
                importlib.import_module(name)
            if paused:
                gc.freeze()
                gc.enable()
            with threadpool_limits(limits=1, user_api="blas"):  # SciPy's too (see run_level)
                yield call
    finally:
        if paused:
            gc.enable()


def _select(settings):
    """The model of ``-m`` (None without), the settings it sets, and the runs it selects.

    Returns
    -------
    model : Model or None
    settings : Settings
    selection : discover.Selection
    """
    model = plan.read_model(settings)
    if model is not None:
        plan.check_dataset_variables(model, settings)
        plan.check_dataset_contrasts(model, settings)
        settings = plan.apply_input(model, settings)
        settings = replace(settings, model=plan.model_settings(model, settings),
                           inference=plan.inference_settings(model, settings, "participant"))
    return model, settings, discover.select_runs(settings)


@contextmanager
def _validation(settings):
    """Run the BIDS validator on the input (unless skipped), in a process of its own, beside
    the work in the block (discovery and planning, which write nothing but a
    ``--bids-database-dir`` index): its verdict is awaited at the end of the block, and
    comes before any error the block raises."""
    if settings.skip_bids_validation:
        yield
        return
    validation = discover.Validation(settings.bids_dir, settings.participant_label)
    try:
        yield
    except Exception:
        validation.verdict()
        raise
    else:
        validation.verdict()
    finally:
        validation.close()  # an interrupted run: the validator ended, its folder removed


def _read_first(selected, allocate):
    """In the child that selected the runs, once it sent them: the first run's series
    (:func:`.glm.read_ahead`, made where ``allocate`` puts it: memory shared with this
    process), read while this process still loads nilearn; None when it is not a volume
    with a mask file."""
    _, settings, selection = selected
    if not selection.runs:
        return None
    run = selection.runs[0]
    mask = settings.mask if settings.mask is not None else run.mask
    if mask is None or surface.is_surface_file(run.bold):
        return None
    smoothing = surface.run_model(run, settings.model).smoothing_fwhm
    return glm.read_ahead(run.bold, mask, smoothing, n_threads=2, allocate=allocate)


def _fit_all(run_plans, settings, ahead=None):
    """Yield (plan, result, seconds) for every run, in order.

    Runs are fitted one at a time, each on ``--nprocs`` threads (voxels and volumes
    are independent), so memory stays that of about two runs' masked series whatever
    the dataset's size. With more than one core, the next run is read, smoothed and
    masked (on :data:`READ_THREADS` threads) while the current one is fitted, on the
    cores the readers leave (one at least: on two cores, more threads than cores cost
    more than they gave). A run's series, once fitted, is where the run after next is read
    (the next one, with one core, which is read after the fit), through a :class:`.glm.SeriesPool`,
    so that reads do not add to that memory. ``ahead``: the first run's series as the selecting
    child read it (:func:`_read_first`), taken if read from the same files in the same way.
    """
    model = settings.model
    pool = glm.SeriesPool()

    def prepare(run_plan, n_threads, ahead=None):
        start = time.perf_counter()
        smoothing = surface.run_model(run_plan.run, model).smoothing_fwhm
        if not glm.is_streamed(run_plan.run.bold, run_plan.run.mask):
            pool.clear()  # this read makes its series elsewhere: the series kept would only take memory
        masked = glm.prepare_run(run_plan.run.bold, run_plan.run.mask, smoothing, n_threads, ahead,
                                 allocate=pool)
        if ahead is not None and masked.series is ahead.series:
            logger.debug("%s: %d voxels read, masked and smoothed while nilearn loaded", run_plan.run.name,
                         masked.series.shape[1])
        else:
            logger.debug("%s: read, masked and smoothed %d voxels in %.1f s", run_plan.run.name,
                         masked.series.shape[1], time.perf_counter() - start)
        return masked

    def fit(run_plan, masked, n_threads=settings.nprocs):
        start = time.perf_counter()
        result = glm.fit_masked(masked, run_plan.design, run_plan.contrasts, noise_model=model.noise_model,
                                name=run_plan.run.name, n_threads=n_threads, overwrite_series=True)
        logger.debug("%s: GLM and contrasts in %.1f s", run_plan.run.name, time.perf_counter() - start)
        return result

    if settings.nprocs <= 1:
        for index, run_plan in enumerate(run_plans):
            start = time.perf_counter()
            masked = prepare(run_plan, 1)
            result = fit(run_plan, masked)
            if index + 1 < len(run_plans):  # where the next run is read
                pool.give_back(masked.series)
            del masked
            yield run_plan, result, time.perf_counter() - start
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        following = reader.submit(prepare, run_plans[0], READ_THREADS, ahead)
        del ahead
        for index, run_plan in enumerate(run_plans):
            start = time.perf_counter()
            masked = following.result()
            following = None  # the future would keep the series alive
            if index + 1 < len(run_plans):
                following = reader.submit(prepare, run_plans[index + 1], READ_THREADS)
            logger.debug("%s: waited %.1f s for the read-ahead", run_plan.run.name, time.perf_counter() - start)
            # beside the next run's readers, on the cores they leave (at least one)
            threads = settings.nprocs if following is None else max(1, settings.nprocs - READ_THREADS)
            result = fit(run_plan, masked, threads)
            if index + 2 < len(run_plans):  # where the run after next is read (the next one is being read)
                pool.give_back(masked.series)
            del masked
            yield run_plan, result, time.perf_counter() - start


def _settle_datasets(settings, staging=None):
    """Write OUTPUT_DIR's dataset files, the input datasets named under its lock: a job beside
    this one (a subject's, over its own ``fmriprep`` folder) may have given a name to another
    dataset since this job named its own; the sidecars ``staging`` holds then take the names
    settled. Returns the settings with them."""
    with outputs.folder_lock(settings.output_dir):
        datasets = _datasets(settings)
        if staging is not None:
            staging.rename_datasets(outputs.renamed_datasets(settings.datasets or datasets, datasets))
        outputs.write_dataset_files(settings.bids_dir, settings.output_dir, datasets)
    return replace(settings, datasets=datasets)


def _datasets(settings) -> dict:
    """The input datasets by the names that ``Sources`` URIs use (``raw``, ``fmriprep``...)."""
    folders = [("designs", settings.design_dir)] if settings.design_dir is not None else []
    if settings.mask is not None:
        folders.append(("mask", Path(settings.mask).absolute().parent))
    earlier = outputs.linked_datasets(settings.output_dir, settings.bids_dir)
    return outputs.dataset_names(settings.bids_dir, settings.derivatives, folders, earlier)


def _kept_for_combining(result):
    """What fixed effects need of a written run: its effect and variance maps, in single
    precision (as written), so that a subject's memory does not grow by five maps a run."""
    kept = tuple(
        glm.ContrastMaps(maps.contrast, {stat: outputs.as_float32(maps.maps[stat]) for stat in ("effect", "variance")},
                         maps.dof)
        for maps in result.contrasts if "effect" in maps.maps
    )
    return replace(result, contrasts=kept, r_square=None)


def _shares_node_names(run, levels) -> bool:
    """A run named by sub and task only: its maps' names are its subject's (SPEC §3); by
    sub, ses and task only, with a session node: its session's."""
    keys = {key for key, _ in run.entities}
    return keys == {"sub", "task"} or ("session" in levels and keys == {"sub", "ses", "task"})


def write_run(run_plan, result, place, settings, levels=("subject",)) -> None:
    """Write a run's design and contrast maps with their sidecars (into ``place``)."""
    run, output_dir, model = run_plan.run, settings.output_dir, surface.run_model(run_plan.run, settings.model)
    design_tsv = naming.build_run("design", run, space=None, extension=".tsv")
    outputs.write_tsv(run_plan.design.matrix, place.path(design_tsv))
    datasets = settings.datasets or _datasets(settings)
    source = lambda path: outputs.source(path, output_dir, datasets)  # noqa: E731
    info = sidecars.FirstLevelModelInfo.from_settings(model, run_plan.design.precomputed)
    design = run_plan.design
    outputs.write_json(sidecars.DesignSidecar(
        repetition_time=run.tr,
        start_time=run.start_time,
        n_volumes=run.n_volumes,
        columns=tuple(str(c) for c in design.matrix.columns),
        conditions=tuple(design.conditions),
        confounds=tuple(design.confounds),
        precomputed=design.precomputed,
        confounds_option=tuple(model.confounds),
        volumes_excluded=design.n_excluded,
        dummy_scans=design.dummy_scans.to_json() if design.dummy_scans else None,
        excluded=_excluded_volumes(design),
        modulated=design.modulation != "none",
        hrf_model=info.hrf_model,
        convolution=model.convolution,
        drift_model=info.drift_model,
        high_pass=info.high_pass,
        drift_order=model.drift_order if model.drift_model == "polynomial" else None,
        bold=source(run.bold),
        mask=source(run.mask) if run.mask is not None else None,
        preprocessed=run.preprocessed,
        sources=tuple(source(p) for p in (run.design, run.events, run.confounds) if p),
    ).to_json(), place.path(naming.build_run("design", run, space=None, extension=".json")))
    sources = tuple(source(p) for p in _run_sources(run_plan))
    # R² has no contrast: a run named by sub and task only has its own R² map beside its subject's maps
    fit_sidecar = sidecars.FitSidecar(sources, result.dof, info, **_model_keys(settings, "run"))
    outputs.write_map_and_sidecars(result.r_square, place, "run_fit", fit_sidecar.to_json(), run_plan.form,
                                   space=run.space, **naming.run_entities(run))
    if _shares_node_names(run, levels):
        return  # its contrast maps are written once, as the subject's or session's (with FixedEffects)
    for maps in result.contrasts:
        sidecar = sidecars.StatmapSidecar(sources, _contrast_info(maps), maps.dof, info, **_model_keys(settings, "run"))
        outputs.write_statmaps("run_statmap", maps, place, sidecar.to_json(), run_plan.form, space=run.space,
                               **naming.run_entities(run))


def _excluded_volumes(design) -> tuple[int, ...]:
    """The volumes (0-based) a design's ``sample_mask`` leaves out of the fit."""
    if design.sample_mask is None:
        return ()
    kept = {int(volume) for volume in design.sample_mask}
    return tuple(volume for volume in range(len(design.matrix)) if volume not in kept)


def _run_sources(run_plan) -> list:
    """The files a run's maps are computed from (SPEC §3): BOLD (both files of a GIFTI pair),
    mask, events, confounds (not with a precomputed design), the precomputed design and the
    design written."""
    run = run_plan.run
    files = [*surface.files_of(run.bold), run.mask, run.events, None if run_plan.design.precomputed else run.confounds,
             run.design, naming.build_run("design", run, space=None, extension=".tsv")]
    return [path for path in files if path is not None]


def _contrast_info(maps) -> sidecars.ContrastInfo:
    return sidecars.ContrastInfo(maps.contrast.name, maps.contrast.weights, getattr(maps.contrast, "test", "t"))


def _own_uri(relative) -> str:
    """The BIDS URI of a file of OUTPUT_DIR (``bids::models/...``), as sidecars cite it."""
    return f"bids::{Path(relative).as_posix()}"


def _made_by(model_file) -> tuple[str, ...]:
    """The model files whose subject maps a group model file tests as its own: itself, and for
    the default model with fixed effects over the subjects, the default model."""
    default, fixed = (_own_uri(naming.build("model", model=name)) for name in ("default", plan.FIXED_EFFECTS_MODEL_NAME))
    return (model_file, default) if model_file == fixed else (model_file,)


def _model_keys(settings, level) -> dict:
    """``node`` and ``model_file`` of a sidecar: the model's node of that level (the model file
    alone when the model has no node there: the subject maps of a model without a subject node,
    the group level's one-sample test of a model without a dataset node)."""
    if settings.model_file is None:
        return {}
    cited = {"model_file": _own_uri(settings.model_file)}
    if settings.model_node_names and level not in settings.model_node_names:
        return cited
    return {"node": settings.model_node_names.get(level, level), **cited}


def write_node(maps, place, settings) -> None:
    """Write a session or subject node's maps, sidecars and mask (into ``place``), in the input's form."""
    output_dir, step = settings.output_dir, maps.step
    model, form = surface.run_model(maps.runs[0].run, settings.model), maps.runs[0].form
    common = _node_entities(maps)
    parts = (step.desc,) if step.desc else ()
    datasets = settings.datasets or _datasets(settings)
    run_masks = [outputs.source(p.run.mask, output_dir, datasets) for p in maps.runs if p.run.mask is not None]
    what = f"Intersection of the masks of the {maps.level}'s runs"
    if not run_masks and maps.runs[0].run.is_surface:  # the vertex rule's masks: made of the runs' series
        what += " (each, the vertices or grayordinates whose series is finite and varies over time)"
        run_masks = [outputs.source(path, output_dir, datasets)
                     for p in maps.runs for path in surface.files_of(p.run.bold)]
    mask_paths = outputs.write_map_and_sidecars(
        maps.mask, place, f"{maps.level}_mask",
        outputs.mask_sidecar(what, maps.space, run_masks),
        form, desc=naming.mask_desc("fixedfx", parts), **common,
    )
    info = sidecars.FirstLevelModelInfo.from_settings(model, all(p.design.precomputed for p in maps.runs))
    weighted = nodes.precision_weighted(step.node, model.precision_weighted)
    kind, desc = f"{maps.level}_statmap", naming.statmap_desc(parts=parts)
    for contrast_maps in maps.contrasts:
        label = contrast_maps.contrast.label
        inputs, runs = maps.inputs_of[label], maps.runs_of(label)
        if len(inputs) == 1 and not isinstance(inputs[0], nodes.NodeMaps) and _shares_node_names(
                inputs[0].run, {maps.level}):
            files = _run_sources(inputs[0])  # the run's maps are the node's
        elif step.source_level == "run":
            files = [
                path for plan in inputs for stat in ("effect", "variance")
                for path in outputs.map_paths("run_statmap", plan.form, contrast=label, stat=stat,
                                              **naming.run_entities(plan.run), space=plan.run.space)
            ] + mask_paths
        else:
            files = [
                path for item in inputs for stat in ("effect", "variance")
                for path in outputs.map_paths(f"{item.level}_statmap", form, contrast=label, stat=stat,
                                              desc=naming.statmap_desc(parts=(item.step.desc,) if item.step.desc else ()),
                                              **_node_entities(item))
            ] + mask_paths
        combination = {"PrecisionWeighted": weighted} if step.node.model_type == "meta" else {}  # glm: no weights
        combination["NumberOfRuns"] = len(runs)
        if step.source_level == "session":
            combination["NumberOfSessions"] = len(inputs)
        combined = {plan.run.name for plan in runs}
        lacking = [  # runs of the node that were fitted without this contrast
            {"Run": plan.run.name, "Reason": f"its design cannot compute contrast {contrast_maps.contrast.name!r} (a "
                                              "condition it weighs has no events, or an empty regressor, in that run)"}
            for plan in maps.runs if plan.run.name not in combined
        ]
        if maps.left_out or lacking:
            combination["RunsLeftOut"] = [
                {"Run": left.run.name, "Reason": left.reason} for left in maps.left_out
            ] + lacking
        sidecar = sidecars.StatmapSidecar(
            tuple(outputs.source(f, output_dir, datasets) for f in files if f is not None),
            _contrast_info(contrast_maps), contrast_maps.dof, info, combination=combination,
            estimator=step.node.model_type,
            extra={"CommandLine": settings.command}, **_node_keys(settings, step.node),
        )
        outputs.write_statmaps(kind, contrast_maps, place, sidecar.to_json(), form, desc=desc, **common)
        if settings.inference.any:
            found = inference.inference_maps(contrast_maps.maps, maps.mask, settings.inference)
            outputs.write_inference_maps(kind, label, found, place, sidecar.to_json(), desc_parts=parts, **common)


def _node_entities(maps) -> dict:
    """The entities of a participant-level node's maps (``session`` at the session level)."""
    common = {"subject": maps.subject, "task": maps.task, "space": maps.space}
    if maps.level == "session":
        common["session"] = maps.session
    return common


def _node_keys(settings, node) -> dict:
    """``node``, ``level`` and ``model_file`` of a session or subject node's sidecar (see
    :func:`_model_keys`: the model file alone where the model has no node of that level, whose
    subject maps the app makes as its own subject node)."""
    keys = _model_keys(settings, node.level)
    if "node" in keys:
        keys.update(node=node.name, bids_level=node.level.capitalize())
    return keys


def run_group(settings, fork: bool = False) -> None:
    """Test every task, space and contrast across subjects; write ``group/``.

    With ``fork``, ``--nprocs`` above 1 and nilearn not loaded yet, the model is read and the
    tests are planned in a forked child while this process loads nilearn (:mod:`.forked`); the
    child then composes the methods text (:func:`_group_methods`) while this process computes
    the maps.
    """
    discover.check_bids_dir(settings.bids_dir)  # its participants.tsv; a path mistyped is said, as at the participant level
    discover.check_given_derivatives(settings.derivatives)
    locations.check_locations(settings.bids_dir, settings.output_dir, settings.work_dir, settings.derivatives,
                              settings.bids_database_dir, subjects=())
    with locations.scratch(settings.work_dir):
        _group(settings, fork)


def _group(settings, fork):
    """:func:`run_group` once the locations are checked."""
    started = time.time()
    with _beside_imports(_plan_group, settings, GROUP_MODULES, fork, _group_methods,
                         "Planning the group level") as planning:
        model, settings, checked, methods = planning.result()
        for text in said_once(map(str, checked.notes)):
            logger.warning("%s", text)
        if settings.boilerplate_only:
            with outputs.folder_lock(settings.output_dir):
                outputs.write_dataset_files(settings.bids_dir, settings.output_dir)
            if model is not None:
                _copy_model(model, settings)
            _said_boilerplate(_write_boilerplate(settings, None, checked, planning.then_result(), methods))
            return
        with ExitStack() as staged:  # a test that fails discards every test staged before it
            intersections = dict(checked.masks)  # made while planning; a task's contrasts share them
            own_masks, shared_written = _own_masks(checked.tests, settings), set()
            sets = []
            for test in checked.tests:
                staging = staged.enter_context(outputs.Staging(settings.output_dir, _group_key(test, settings)))
                sets.append((staging, write_group(test, settings, staging, intersections, own_masks, shared_written)))
                logger.info("task-%s%s contrast-%s%s: %s over %d subjects computed", test.task,
                            f" space-{test.space}" if test.space else "", test.contrast, test.parts_text,
                            _group_test_name(test, settings), len(set(test.subjects)))
            plan.check_inputs_unchanged(checked.tests)
            # every test computed: only now does OUTPUT_DIR change
            with outputs.folder_lock(settings.output_dir):  # first: it marks OUTPUT_DIR as ours
                outputs.write_dataset_files(settings.bids_dir, settings.output_dir)
            if model is not None:
                _copy_model(model, settings)
            sidecar_of = _set_sidecars(settings.output_dir)  # each earlier set's sidecar read once for both
            stale = _stale_group_files(settings.output_dir, checked, settings, sidecar_of)
            tested_from = _tested_contrasts(stale, sidecar_of)
            for text in (_untested_maps_removed(stale, checked, settings, tested_from)
                         + _other_maps_removed(stale, checked, tested_from)):
                logger.warning("%s", text)
            outputs.remove_files(settings.output_dir, stale)
            for staging, stale in sets:
                staging.commit(stale)
        for text in _outdated_group_maps(settings.output_dir, started):
            logger.warning("%s", text)
        composed = planning.then_result()
        if composed is not None:
            logger.debug("Methods text composed in process %d while the maps were computed", planning.pid)
        _write_boilerplate(settings, None, checked, composed, methods)
    plain = _reported_tests(settings, checked)
    if settings.reports and plain:
        from . import report

        report.write_group_report(settings, replace(checked, tests=plain))
    elif settings.reports and checked.tests:
        logger.info("No group report: the group report shows the tests of one dataset node over the subject maps, "
                    "and the model's tests are named apart (several dataset nodes, a GroupBy beyond the contrast, "
                    "or session maps); their maps are in %s.", settings.output_dir / "group")
    elif plain:  # the page showed maps this job replaced: they go, with their figures
        _remove_outdated_group_page(settings, plain)
    # else: this job's tests are another model's, which no page shows; the page's maps are as they were
    page = settings.output_dir / naming.build("group_report")
    logger.log(progress.SUMMARY, "Group level done: %d test(s) of %s in %s%s%s", len(checked.tests),
               ", ".join(sorted({f"task-{t.task}" for t in checked.tests})), settings.output_dir / "group",
               _warnings_above(), f"; report: {page}" if settings.reports and plain else "")


def _outdated_group_maps(output_dir, since) -> list[str]:
    """A warning for the group maps this job left as they were (another group model's, which a
    job replaces only its own; ``since``: the job's start) whose subject maps were rewritten or
    removed since: their ``Sources`` no longer name what they were computed from. One
    ``stat-t`` sidecar is read a set."""
    from .errors import FixedFxError
    from .jsonfile import read_object

    stale = []
    for sidecar in sorted((output_dir / "group").glob("*_stat-t_*statmap.json")):
        try:
            made = sidecar.stat().st_mtime
            if made >= since:  # written by this job
                continue
            sources = read_object(sidecar).get("Sources", [])
        except (OSError, FixedFxError):
            continue
        for source in sources if isinstance(sources, list) else []:
            path = output_dir / str(source).removeprefix("bids::") if str(source).startswith("bids::") else None
            if path is not None and "/func/" in str(source) and (not path.exists() or path.stat().st_mtime > made):
                stale.append(sidecar.name)
                break
    if not stale:
        return []
    return [f"{len(stale)} group map set(s) of another group model or contrast, such as {stale[0]}, were computed "
            "from subject maps rewritten or removed since (or copied without their modification times: cp -p and "
            "rsync -t keep them); rerun the group level that made them, or remove them."]


def _plan_group(settings):
    """The model of ``-m`` or ``--group-covariates`` (None without), the settings it sets, the
    planned tests (:func:`.plan.plan_group`) and the methods facts read back from the first
    level's sidecars (:func:`.boilerplate.group_methods`): everything checked, nothing written.

    Returns
    -------
    model : Model or None
    settings : Settings
    checked : plan.GroupPlan
    methods : boilerplate.facts.Methods
    """
    from . import boilerplate

    model = plan.read_model(settings) if settings.model_file else None
    if model is not None:
        settings = plan.apply_input(model, settings)
        settings = replace(settings, inference=plan.inference_settings(model, settings, "group"))
        for text in model.notes:
            logger.warning("%s", text)
        if not model.nodes_at("dataset") and not settings.group_covariates:
            logger.warning("%s has no dataset node, so each contrast of the subject maps is tested by a one-sample "
                           "t-test across subjects (the app's default), whose sidecars name no Node of it; add a "
                           "dataset node to state the group test.", settings.model_file)
    if settings.group_covariates:
        participants = plan.read_participants(settings.bids_dir, coded=settings.group_covariates)
        if settings.participant_label:  # the levels and values of the subjects tested
            participants = participants[participants.index.isin(settings.participant_label)]
        model = plan.covariates_model(settings.group_covariates, participants, settings.inference,
                                      plan.described_columns(settings.bids_dir))
        for text in model.notes:
            logger.warning("%s", text)
    if model is not None:
        if settings.model_file and not settings.group_covariates:
            _check_model_copy(model, settings.output_dir / _model_copy(model))
            for text in _maps_of_replaced_nodes(model, settings.output_dir):
                logger.warning("%s", text)
        dataset = model.nodes_at("dataset")
        group_model = "fixed" if dataset and dataset[0].model_type == "meta" else "random"
        settings = replace(settings, group_model=group_model, group_design=_design_desc(dataset),
                           model_file=_model_copy(model), model_node_names={n.level: n.name for n in model.nodes})
    elif _default_model_states(settings.output_dir / naming.build("model", model="default"), settings.group_model):
        settings = replace(settings, model_file=naming.build("model", model="default"),
                           model_node_names={"dataset": "dataset"})
    checked = plan.plan_group(settings, model)
    if model is not None and settings.model_file and not settings.group_covariates:
        _check_inputs_made_by(model, settings, checked)
    elif model is None and settings.group_model == "fixed":
        model, settings = _fixed_effects_model(settings, checked)
    methods = replace(boilerplate.group_methods(settings, checked),
                      undescribed=_other_group_tasks(settings.output_dir, checked))
    return model, settings, checked, methods


def _other_group_tasks(output_dir, checked) -> tuple[str, ...]:
    """The tasks (``task-<t>``) of the group maps in OUTPUT_DIR that this job does not test,
    which other jobs made (one per task), and its methods text does not describe."""
    mine = {test.task for test in (*checked.tests, *checked.untested)}
    tasks = {naming.parse(path.name).get("task") for path in (output_dir / "group").glob("task-*_statmap.json")}
    return tuple(f"task-{task}" for task in sorted(tasks - mine - {None}))


def _fixed_effects_model(settings, checked):
    """``--group-model fixed`` without ``-m``: the default model with fixed effects over the
    subjects (:func:`.plan.fixed_effects_model`), which the group maps' sidecars cite and
    the job writes beside it; None (and the settings as they were) unless the default model in
    OUTPUT_DIR made every subject map tested.

    Returns
    -------
    model : Model or None
    settings : Settings
    """
    default = naming.build("model", model="default")
    made = [item.info.model_file == _own_uri(default) for test in checked.tests for item in test.inputs]
    if not made or not all(made) or not _default_model_states(settings.output_dir / default, "random"):
        return None, settings
    model = plan.fixed_effects_model((settings.output_dir / default).read_text(encoding="utf-8"), settings.inference)
    return model, replace(settings, model_file=_model_copy(model), model_node_names={"dataset": "dataset"})


def _default_model_states(path, group_model) -> bool:
    """Whether the default model in OUTPUT_DIR states this group model in its dataset node
    (``meta`` for fixed effects, ``glm`` for the t-test): the group maps' sidecars cite it
    only then (a ``--group-model fixed`` job cited a model of the t-test)."""
    import json

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        types = [str(node.get("Model", {}).get("Type", "glm")).lower() for node in document["Nodes"]
                 if str(node.get("Level", "")).lower() == "dataset"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return types == ["meta" if group_model == "fixed" else "glm"]


def _group_methods(planned, allocate):
    """In the child that planned the group level, once it sent the plan: the methods text
    (:func:`.boilerplate.compose` of the facts that planning read back), made while this
    process computes the maps."""
    from . import boilerplate

    _, settings, checked, methods = planned
    return boilerplate.compose(settings, group_plan=checked, methods=methods)


def _model_copy(model):
    """The path in OUTPUT_DIR (``models/``) of the model's copy."""
    return naming.build("model", model=naming.label_of(model.name))


def _check_model_copy(model, target) -> None:
    """The group level's model may replace the copy of the model of the same name in OUTPUT_DIR
    only when their nodes below the dataset level are the same: the subject maps' sidecars name
    that copy as the model that made them."""
    if _other_participant_nodes(model, target):
        raise UsageError(
            f"{target} holds another model named {model.name!r}, whose run, session or subject nodes made the "
            "subject maps (their sidecars name it); run the participant level with this model first, which replaces "
            "them and the copy."
        )


def _check_inputs_made_by(model, settings, checked) -> None:
    """The group level's model, when it states run, session or subject nodes, states those
    that made the subject maps (the model their sidecars cite): a model of other run nodes
    (another HRF, smoothing) was accepted, and its copy cited by maps it did not make."""
    if not any(node.level != "dataset" for node in model.nodes):
        return  # dataset nodes alone: they say nothing of how the subject maps were made
    own = _own_uri(_model_copy(model))
    for test in checked.tests:
        for item in test.inputs:
            cited = item.info.model_file
            if cited is None or cited == own:
                continue
            path = settings.output_dir / cited.removeprefix("bids::")
            if _other_participant_nodes(model, path):  # a copy gone (OUTPUT_DIR moved in parts): not compared
                raise UsageError(
                    f"The subject maps of task-{test.task} contrast-{item.contrast} (sub-{item.subject}'s, among "
                    f"others) were made by {cited.removeprefix('bids::')}, whose run, session or subject nodes are "
                    f"not those of the model {model.name!r} given with -m; run the participant level with this "
                    "model first, or give its dataset nodes to the model that made the maps."
                )


def _maps_of_replaced_nodes(model, output_dir) -> list[str]:
    """A warning for the group maps of nodes that the model's copy in OUTPUT_DIR holds and this
    model (of the same Name) does not: the copy is replaced, and their sidecars cite it still."""
    from .errors import FixedFxError
    from .jsonfile import read_object

    cited, names = _own_uri(_model_copy(model)), {node.name for node in model.nodes}
    orphans = set()
    for path in (output_dir / "group").glob("*_stat-effect*_statmap.json"):
        try:
            sidecar = read_object(path)
        except FixedFxError:  # a sidecar this app cannot read is not its own
            continue
        if sidecar.get("ModelFile") == cited and sidecar.get("Node") is not None and sidecar.get("Node") not in names:
            orphans.add(str(sidecar.get("Node")))
    if not orphans:
        return []
    return [f"{output_dir / _model_copy(model)} is replaced by this model, which has no node "
            f"{', '.join(sorted(orphans))}: that node's group maps stay and cite it still; give this model another "
            "Name to keep both."]


def _other_participant_nodes(model, target) -> bool:
    """Whether the model file ``target`` (a copy in OUTPUT_DIR) holds run, session or subject
    nodes other than ``model``'s: those made the subject maps whose sidecars name it. False
    when there is no readable copy."""
    import json

    from .plan.models import participant_nodes

    try:
        earlier = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(earlier, dict) and participant_nodes(earlier) != participant_nodes(json.loads(model.to_json()))


def _warn_replaced_model(model, settings, checked, merged=False) -> None:
    """Warn when the participant level replaces a copy of its model in OUTPUT_DIR (the default
    model of other options, say) whose run, session or subject nodes differ, while subjects
    this job leaves alone were made otherwise than this job makes its own (their maps' first
    level settings or contrasts differ): their sidecars then cite a model that did not make
    them (the group level refuses to test subjects of other settings together). ``merged``:
    the copy is a default model of these options, whose conditions this job's names too
    (:func:`.plan.default_model`): maps of fewer contrasts (conditions their runs lack) are
    then the model's."""
    target = settings.output_dir / _model_copy(model)
    if not _other_participant_nodes(model, target):
        return
    if merged and plan.models.adds_to_earlier_default_model(model, settings.output_dir):
        return  # the maps that cite the copy, of these options, are remade by the new one: none is looked at
    subjects = {s.subject for s in checked.subjects}
    own_sets = {(s.subject, s.task, s.space) for s in checked.subjects}
    weighted = bool(settings.model.precision_weighted)
    labels = {c.label for s in checked.subjects for p in s.runs for c in p.contrasts if c.test in ("t", "pass")}
    if merged:  # with conditions this job's runs lack, as other subjects have
        labels |= _named_contrast_labels(model)
    options, otherwise = [], {"options": [], "contrasts": []}  # subjects the group level refuses; the rest
    for folder in sorted(p for p in settings.output_dir.glob("sub-*") if p.is_dir()):
        label = folder.name.removeprefix("sub-")
        effects = sorted(folder.rglob("*_stat-effect_statmap.json"))
        name = folder.name
        if label in subjects:  # the same subject's other tasks and spaces, which this job leaves alone
            effects = [e for e in effects
                       if (label, *map(naming.parse(e.name).get, ("task", "space"))) not in own_sets]
            name = f"{folder.name}'s other tasks or spaces"
        made = _made_otherwise(effects, settings.model, labels, weighted, merged) if effects else None
        if made is not None:  # (the group level tests a task and space at a time: a subject's other ones apart)
            (options if made == "options" and label not in subjects else otherwise[made]).append(name)
    remade = "their sidecars cite a model that did not make them (-m of it would not remake their maps)"
    for others, what, then in (
        (options, "options", "their sidecars cite a model that did not make them and the group level will refuse to "
                             "test them with these subjects"),
        (otherwise["options"], "options", remade),
        (otherwise["contrasts"], "contrasts", remade),
    ):
        if others:
            made_with = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "") + (
                " was" if len(others) == 1 and "'s other" not in others[0] else " were")
            logger.warning("%s described other %s (%s made with them); it now describes this job's, so %s: rerun them "
                           "with this job's options, or write this job to another OUTPUT_DIR.",
                           target, what, made_with, then)


def _named_contrast_labels(model) -> set:
    """The file labels of the t contrasts a model's run node names (its dummy contrasts' plain
    conditions, its contrasts): those of maps the model makes where their conditions are."""
    from .contrasts import bids_label
    from .plan.models import run_node

    node = run_node(model)
    if node is None:
        return set()
    names = [c.name for c in node.contrasts if c.test in ("t", "pass")]
    dummy = node.dummy_contrasts
    if dummy is not None and dummy.test == "t":
        names += [c for c in (dummy.conditions if dummy.conditions is not None else node.x)
                  if isinstance(c, str) and "*" not in c and "?" not in c]
    return {bids_label(name) for name in names}


def _made_otherwise(effects, model, labels, weighted, merged=False) -> str | None:
    """How the effect maps of these sidecars were made otherwise than with these first-level
    settings (``model``, as they apply to the first sidecar's map: a surface map's smoothing is
    its own; :meth:`.sidecars.FirstLevelModelInfo.compared`) and precision weighting
    (``"options"``: the settings the first sidecar records, the weighting of the first one that
    combined runs), or contrast labels (``"contrasts"``: others than ``labels``, or, ``merged``,
    some outside them); None when they were not."""
    from .errors import FixedFxError
    from .jsonfile import read_object

    try:
        recorded = sidecars.FirstLevelModelInfo.from_json(read_object(effects[0]), effects[0])
        combined = next((sidecars.StatmapSidecar.read(p) for p in effects if "_run-" not in p.name), None)
    except (FixedFxError, KeyError, TypeError, ValueError):  # unreadable: cannot tell, so said
        return "options"
    expected = sidecars.FirstLevelModelInfo.from_settings(_model_of_map(effects[0], model)).compared()
    if (combined is not None and combined.precision_weighted not in (None, weighted)) or recorded.compared() != expected:
        return "options"
    theirs = {naming.parse(p.name).get("contrast") for p in effects}
    return "contrasts" if (not theirs <= labels if merged else theirs != labels) else None


def _model_of_map(sidecar, model):
    """The first-level settings as they apply to the map of a sidecar: a GIFTI or CIFTI map's
    smoothing decided by :func:`.surface.smoothing_for` (the map beside the sidecar tells)."""
    stem = sidecar.name.removesuffix(".json")
    for extension, kind in ((surface.GIFTI_MAP, "gifti"), (surface.CIFTI_MAP, "cifti")):
        if sidecar.with_name(stem + extension).exists():
            return surface.model_in(naming.parse(sidecar.name).get("space"), kind, model)
    return model


def _write_model_copy(model, default, checked, settings, looked_for=None, seen=None) -> None:
    """Write the participant level's model copy, under the lock of ``models/``; the default
    model made again there (``default``): a job beside this one may have written its conditions
    since (:func:`.plan.default_model`; ``looked_for``: the conditions planning looked for in
    other events files, which are not looked for again). ``seen``: the copy's text when the job
    began: a copy that another job wrote since is checked again as the one there at the start
    was (:func:`_warn_replaced_model`), against its options as they are now."""
    with outputs.folder_lock(settings.output_dir / "models"):  # jobs of one subject merge their conditions in turn
        if default:
            model = plan.default_model(checked, settings, looked_for)[0] or model
        if _text_or_none(settings.output_dir / _model_copy(model)) != seen:
            _warn_replaced_model(model, settings, checked,
                                 merged=default and plan.same_default_options(checked, settings))
        _copy_model(model, settings)


def _text_or_none(path) -> str | None:
    """A file's text, or None when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _copy_model(model, settings):
    """Write the model's copy in OUTPUT_DIR (``models/``) unless it is there (the participant
    level writes it); its path."""
    relative = _model_copy(model)
    target = settings.output_dir / relative
    if not target.is_file() or target.read_text() != model.to_json():
        outputs.write_text(model.to_json(), target)
    return relative


def _design_desc(dataset_nodes) -> str | None:
    """The ``desc`` of a model's group-design maps: its first dataset node's
    (:func:`.plan.graph.design_desc`)."""
    from .plan.graph import design_desc

    return design_desc(dataset_nodes[0]) if dataset_nodes else None


def _own(test, settings) -> tuple:
    """A test's group model, design ``desc`` and the ``desc`` of its maps without a
    corrected-inference part: the dataset node's, or (without a model) the settings'."""
    group_model = test.group_model or settings.group_model
    design = test.design_desc if test.node is not None else settings.group_design
    return group_model, design, naming.statmap_desc(group_model, design=design, parts=test.desc_parts)


def _check_other_sessions(checked, settings) -> None:
    """Refuse a ``--session-label`` job whose subject maps would replace those of an earlier
    job over other sessions of the subject (and delete that job's run maps).

    Raises
    ------
    UsageError
        OUTPUT_DIR holds run maps of a session this job leaves out.
    """
    by_filter = "session" in settings.bids_filters.get("bold", {})
    if not (settings.session_label or by_filter) or "subject" not in {step.level for step in checked.steps}:
        return
    for subject in checked.subjects:
        selected = {plan.run.session for plan in subject.runs} - {None}
        found = outputs.existing_set(settings.output_dir, f"sub-{subject.subject}", subject=subject.subject,
                                     task=subject.task, space=(subject.space, None))
        other = sorted({entities["session"] for entities in map(naming.parse, found)  # (runs without run-, too)
                        if entities.get("session") not in (None, *selected) and entities.get("suffix") == "statmap"})
        if other:
            every = " ".join(sorted(selected | set(other)))
            if settings.session_label:
                flag = settings.selected_by.get("session_label", "--session-label")
                chosen, remedy = f"{flag} {' '.join(sorted(selected))}", f"give {flag} {every}"
            else:
                flag = settings.selected_by.get("bids_filters", "--bids-filter-file")
                chosen = f"the session(s) {' '.join(sorted(selected))} of {flag}"
                remedy = f"let {flag} select the sessions {every}"
            raise UsageError(
                f"{settings.output_dir} holds maps of sub-{subject.subject} ses-{', ses-'.join(other)}, which this "
                f"job's subject maps of {chosen} only would replace: {remedy} to combine all of them, or use another "
                "OUTPUT_DIR."
            )


#: Entities of an input's name that the output names do not carry (fMRIPrep's template
#: resolution and cohort): the maps of two of their values would have one name.
UNNAMED_ENTITIES = ("res", "cohort")


def _entities_unnamed(name) -> dict:
    """The :data:`UNNAMED_ENTITIES` of a file name (``{"res": "2"}``)."""
    import re

    return dict(re.findall(r"_(%s)-([a-zA-Z0-9]+)" % "|".join(UNNAMED_ENTITIES), Path(name).name))


def _bold_source(sidecar) -> str | None:
    """The BOLD series a map's sidecar names among its ``Sources`` (a run's map), or None (a
    subject's map, whose sources are run maps; an unreadable sidecar, said where it is read)."""
    try:
        sources = sidecars.read_json(sidecar).get("Sources", [])
    except FixedFxError:
        return None
    return next((s for s in sources if isinstance(s, str) and "_bold" in s), None) if isinstance(sources, list) else None


def _check_other_resolution(checked, settings) -> None:
    """Refuse a job whose subject maps would replace those an earlier job made of the same
    subject, task and space from inputs of another resolution or cohort (``res-1`` and
    ``res-2`` of a template, chosen with ``--bids-filter-file``): the names of the maps carry
    neither, so the second silently replaced the first.

    Raises
    ------
    UsageError
    """
    for subject in checked.subjects:
        mine = {tuple(sorted(_entities_unnamed(plan.run.bold).items())) for plan in subject.runs}
        found = sorted((path for path in outputs.existing_set(
            settings.output_dir, f"sub-{subject.subject}", subject=subject.subject, task=subject.task,
            space=subject.space) if path.name.endswith("_statmap.json")),
            key=lambda path: "run" not in naming.parse(path))  # a run's maps first: their Sources name the BOLD
        bold = next(filter(None, map(_bold_source, (settings.output_dir / path for path in found))), None)
        theirs = tuple(sorted(_entities_unnamed(bold).items())) if bold else None
        if theirs is not None and theirs not in mine:
            said = lambda entities: " ".join(f"{k}-{v}" for k, v in entities) or "no res- or cohort-"  # noqa: E731
            raise UsageError(
                f"{settings.output_dir} holds maps of sub-{subject.subject} task-{subject.task}"
                f"{f' space-{subject.space}' if subject.space else ''} made from inputs of {said(theirs)}, and this "
                f"job's inputs are of {' and '.join(said(m) for m in sorted(mine))}; the names of the maps carry "
                "neither, so these would replace those: use another OUTPUT_DIR for each resolution, or remove "
                "the earlier maps first."
            )


def _check_shared_designs(checked, settings) -> None:
    """Refuse a job that would rewrite a run's design (``_design.tsv`` and its sidecar, named
    without a space: every space's maps of the run share them) with another one, while maps of
    the run in a space this job does not remake stay: they would cite a design that did not
    make them (a rerun of one space with another model, or other volumes left out).

    Raises
    ------
    UsageError
    """
    mine = defaultdict(set)  # (subject, task) -> the spaces this job remakes
    for subject in checked.subjects:
        mine[subject.subject, subject.task].add(subject.space)
    listed = {}  # a run folder -> the entities of the maps in it (one listing per folder)
    for subject in checked.subjects:
        for run_plan in subject.runs:
            relative = naming.build_run("design", run_plan.run, space=None, extension=".tsv")
            earlier = settings.output_dir / relative
            folder = earlier.parent
            if folder not in listed:
                try:
                    listed[folder] = [found for path in folder.iterdir()
                                      if (found := naming.parse(path.relative_to(settings.output_dir))).get("stat")]
                except OSError:
                    listed[folder] = []
            own, remade = naming.run_entities(run_plan.run), mine[subject.subject, subject.task]
            others = sorted({found.get("space") or "none" for found in listed[folder]  # the run's other maps
                             if {k: found.get(k) for k in own} == own and found.get("space") not in remade})
            if others and not _same_design(earlier, run_plan.design):
                raise UsageError(
                    f"{run_plan.run.name}: this job's design differs from {relative} in {settings.output_dir} (its "
                    f"columns or the volumes it leaves out), with which the run's maps in space "
                    f"{' and '.join(others)} were computed, and this job does not remake them (its design is shared "
                    "by every space's maps): include those spaces (--space), or write to another OUTPUT_DIR."
                )


def _same_design(earlier, design) -> bool:
    """Whether the design files written at ``earlier`` (its ``.tsv``; the ``.json`` beside it)
    hold ``design``: the same table, and the same volumes left out of the fit. Unreadable
    ones count as the same (replaced, as before)."""
    try:
        if earlier.read_text(encoding="utf-8") != outputs.tsv_text(design.matrix):
            return False
        sidecar = json.loads(earlier.with_suffix(".json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return not earlier.exists()  # no design there: nothing to rewrite
    except (OSError, ValueError):
        return True
    excluded = sidecar.get("ExcludedVolumeIndices") if isinstance(sidecar, dict) else None
    if excluded is None:  # written before the indices were: the count
        return isinstance(sidecar, dict) and sidecar.get("VolumesExcluded") == design.n_excluded
    return excluded == list(_excluded_volumes(design))


def _stale_group_files(output_dir, checked, settings, sidecar_of) -> list:
    """Files of the planned tasks and spaces that this group run does not make again: maps
    of its own group models, nodes and groups whose contrast it no longer tests (other group
    models' maps stay: their names differ); the maps of a group of its nodes that it no longer
    tests (one subject left in it) or that the data no longer has, when this job tested every
    subject of theirs (a ``--participant-label`` job leaves the groups it did not select); the
    group masks of the maps removed, and figures of contrasts the report no longer shows.
    ``sidecar_of``: :func:`_set_sidecars` of OUTPUT_DIR."""
    written, owns = set(), set()
    for test in checked.tests:
        group_model, _, own = _own(test, settings)
        owns.add(own)
        written |= {(test.task, test.space, contrast.label, own) for contrast, _ in combine.contrasts_of(test, group_model)}
    untested_owns = {_own(test, settings)[2] for test in checked.untested} - owns
    grouped_owns = {_own(test, settings)[2] for test in (*checked.tests, *checked.untested) if test.desc_parts}
    considered = {item.subject for test in (*checked.tests, *checked.untested) for item in test.inputs}
    nodes = {test.node.name for test in (*checked.tests, *checked.untested) if test.node is not None}

    def all_tested(relative) -> bool:
        """Whether this job tested every subject of an earlier set."""
        subjects = (sidecar_of(relative) or {}).get("Subjects")
        return isinstance(subjects, list) and {str(s) for s in subjects} <= considered

    def replaced_group(relative, own) -> bool:
        """Whether an earlier set is of a group of this job's nodes whose subjects it all tested."""
        found = sidecar_of(relative) or {}
        return all_tested(relative) and (own in untested_owns or (
            found.get("Node") in nodes and settings.model_file is not None
            and found.get("ModelFile") == _own_uri(settings.model_file)))

    def masks_cited(relative) -> set:
        """The stems of the group files that a set's sidecar cites (its group mask)."""
        sources = (sidecar_of(relative) or {}).get("Sources")
        return {_stem(str(s).removeprefix("bids::")) for s in (sources if isinstance(sources, list) else [])
                if str(s).startswith("bids::group/") and ".." not in str(s)}

    shown = {(task, space, label) for task, space, label, _ in written}
    # the group masks of this job's models: a task's (no contrast) stays while a test of it is made
    tested_contrasts = {(*_mask_key(test, settings), test.contrast) for test in checked.tests}
    tested_masks = {tested[:3] for tested in tested_contrasts}
    stale, other_masks, cited, kept = [], [], set(), []
    for task, space in {(t.task, t.space) for t in (*checked.tests, *checked.untested)}:
        for relative in outputs.existing_set(output_dir, "group", task=task, space=space):
            entities = naming.parse(relative)
            contrast = entities.get("contrast")
            if entities.get("suffix") == "mask":
                key = (task, space, entities.get("desc"))
                if key not in tested_masks or (contrast is not None and (*key, contrast) not in tested_contrasts):
                    other_masks.append(relative)  # not this job's: removed with the maps that cite it, if they go
                continue
            if contrast is None:
                continue
            if relative.parent.name == "figures":
                if (task, space, contrast) not in shown:
                    stale.append(relative)
                continue
            own = naming.group_model_of(entities)
            if (task, space, contrast, own) in written:
                continue
            if (own in owns and (own not in grouped_owns or all_tested(relative))) or replaced_group(relative, own):
                stale.append(relative)
                cited |= masks_cited(relative)
            elif entities.get("suffix") == "statmap":
                kept.append(relative)
    masks = [mask for mask in other_masks if _stem(mask) in cited]
    gone = {tuple(map(naming.parse(mask).get, ("task", "space", "desc"))) for mask in masks}
    still = set().union(*map(masks_cited, kept)) if kept else set()  # (an earlier set that stays cites it)
    masks += [mask for mask in other_masks if mask not in masks and naming.parse(mask).get("contrast") is None
              and tuple(map(naming.parse(mask).get, ("task", "space", "desc"))) in gone and _stem(mask) not in still]
    return stale + masks  # (a group's task-wide mask goes with the masks of its contrasts' maps)


def _stem(relative) -> str:
    """A file's path without its extensions (a map and its sidecar share it)."""
    return str(relative).split(".", 1)[0]


def _set_sidecars(output_dir):
    """``sidecar_of(relative)``: the ``stat-t`` (or ``stat-F``) sidecar of a group map's set
    (corrected-inference maps included: their ``desc`` adds the method to the set's), as a
    dict (None when it has none that reads); each set's read once."""
    import glob

    from .errors import FixedFxError
    from .jsonfile import read_object

    read = {}

    def sidecar_of(relative):
        own = naming.group_model_of(naming.parse(relative))
        desc = f"_desc-{own}" if own else ""
        stem = glob.escape(str(relative).split("_stat-", 1)[0])
        if (stem, desc) not in read:
            read[stem, desc] = None
            for sidecar in sorted(Path(output_dir).glob(f"{stem}_stat-[tF]{desc}_statmap.json")):
                try:
                    read[stem, desc] = read_object(sidecar)
                    break
                except (OSError, FixedFxError):
                    continue
        return read[stem, desc]
    return sidecar_of


def _tested_contrasts(stale, sidecar_of) -> dict:
    """{stale group map: the contrast of the subject maps it was computed from}, from its set's
    ``stat-t`` (or ``stat-F``) sidecar's ``Sources`` (a group design names its maps
    ``visualAge`` after the subject maps' ``visual``); ``sidecar_of``: :func:`_set_sidecars`, read once a set."""
    import re

    found = {}
    for relative in stale:
        entities = naming.parse(relative)
        if entities.get("suffix") != "statmap" or entities.get("contrast") is None:
            continue
        sources = (sidecar_of(relative) or {}).get("Sources", [])
        labels = [m.group(1) for m in (re.search(r"_contrast-([a-zA-Z0-9]+)_", str(source))
                                        for source in (sources if isinstance(sources, list) else [])) if m]
        found[relative] = labels[0] if labels else entities["contrast"]
    return found


def _untested_maps_removed(stale, checked, settings, tested_from=None) -> list[str]:
    """A warning per task and space whose earlier group maps of a contrast this job does not
    test (too few subjects now) are among ``stale``: they go, so that no map outlives the
    subjects it was computed from, and the user is told. ``tested_from``: each stale map's
    subject contrast (:func:`_tested_contrasts`)."""
    untested = {(t.task, t.space, t.contrast) for t in checked.untested}
    groups = {(t.task, t.space, t.contrast, _own(t, settings)[2]): t.parts_text
              for t in checked.untested if t.desc_parts}  # a group of the GroupBy: named, as its test was
    removed = defaultdict(set)
    for relative in stale:
        entities = naming.parse(relative)
        contrast = (tested_from or {}).get(relative, entities.get("contrast"))
        key = (entities.get("task"), entities.get("space"), contrast)
        if entities.get("suffix") == "statmap" and key in untested:
            removed[key[:2]].add(entities.get("contrast") + groups.get((*key, naming.group_model_of(entities)), ""))
    return [f"task-{task}{f' space-{space}' if space else ''}: the group maps of contrast(s) "
            f"{', '.join(sorted(labels))} that an earlier job wrote were removed, since this job does not test them "
            "(see above); rerun the group level over the subjects that made them to make them again"
            for (task, space), labels in sorted(removed.items(), key=lambda item: (item[0][0], item[0][1] or ""))]


def _other_maps_removed(stale, checked, tested_from=None) -> list[str]:
    """A warning for the maps among ``stale`` of contrasts that this job's tests still make,
    but under other names (another design of ``--group-covariates``, or of a dataset node of
    the same name): they go with the names this job now owns, and the user is told."""
    untested = {(t.task, t.space, t.contrast) for t in checked.untested}
    removed = set()
    for relative in stale:
        entities = naming.parse(relative)
        contrast = (tested_from or {}).get(relative, entities.get("contrast"))
        if (entities.get("suffix") == "statmap" and entities.get("contrast") is not None
                and Path(relative).parent.name != "figures"
                and (entities.get("task"), entities.get("space"), contrast) not in untested):
            removed.add("_".join(f"{key}-{entities[key]}" for key in ("task", "space", "contrast", "desc")
                                 if entities.get(key) is not None))
    removed = sorted(removed)
    if not removed:
        return []
    return [f"{len(removed)} set(s) of group maps that an earlier job wrote under the names this job's group model "
            f"uses, such as {removed[0]}, were removed, since this job does not compute them (a contrast the model "
            "no longer has, a group of its GroupBy no longer in the data, or another design of the same names); to keep the maps of two designs, give their "
            "dataset nodes different names (or write them to different OUTPUT_DIRs)"]


def _group_key(test, settings) -> str:
    """The name of a group test's set of maps (:class:`.outputs.Staging`)."""
    group_model, _, own = _own(test, settings)
    return naming.set_key(group=own or group_model, task=test.task, space=test.space, contrast=test.contrast)


def _without_shared_figures(stale, output_dir, subject) -> list:
    """The files of a subject's set to replace, but its figures of no space (a run's design,
    its motion) while maps of the task in another space stay: that space's report section
    shows them (the design is one for all spaces of a run)."""
    others = [path for path in outputs.existing_set(output_dir, f"sub-{subject.subject}", subject=subject.subject,
                                                   task=subject.task)
              if naming.parse(path).get("space") not in (None, subject.space) and path.name.endswith("_statmap.json")]
    if not others:
        return stale
    return [path for path in stale if not ("figures" in path.parts and naming.parse(path).get("space") is None)]


def _group_maps_outdated_by(output_dir, checked) -> list[str]:
    """A warning for the group maps of the tasks this participant job rewrote subject maps of:
    they were computed from the maps it replaced (their Sources may name files now gone)."""
    import glob

    subjects = sorted({s.subject for s in checked.subjects})
    tasks = sorted({s.task for s in checked.subjects  # in the spaces this job wrote (another's stay as they were)
                    if next((output_dir / "group").glob(glob.escape(f"task-{s.task}_") + (
                        glob.escape(f"space-{s.space}_") if s.space else "") + "*_statmap.json"), None) is not None})
    if not tasks:
        return []
    named = ", ".join(f"sub-{s}" for s in subjects[:5])
    named += f" and {len(subjects) - 5} more" if len(subjects) > 5 else ""
    return [f"{output_dir / 'group'} holds group maps of {', '.join(f'task-{t}' for t in tasks)} computed before this "
            f"job replaced the maps of {named}; rerun the group level to update them."]


def _mask_key(test, settings) -> tuple:
    """The task, space and ``desc`` of a test's group mask (``desc-group_mask``)."""
    group_model, design, _ = _own(test, settings)
    return test.task, test.space, naming.group_mask_desc(group_model, design, test.desc_parts)


def _own_masks(tests, settings) -> dict:
    """The group masks whose tests were computed in masks of their own (a subject without one
    contrast's maps): each such mask's key (:func:`_mask_key`) and every subject mask of its
    tests, whose intersection is the task's mask the report shows."""
    found = defaultdict(dict)
    for test in tests:
        found[_mask_key(test, settings)][tuple(i.mask for i in test.inputs)] = None
    return {key: tuple(dict.fromkeys(m for masks in sets for m in masks)) for key, sets in found.items()
            if len(sets) > 1}


def write_group(test, settings, staging, intersections=None, own_masks=None, shared_written=None) -> list:
    """Compute one group-level test (or a model's contrasts of it) and write its maps into
    ``staging`` (:class:`.outputs.Staging`), as one set that replaces the earlier maps of the
    same group model, node and group (other group models' maps, named apart, stay).
    ``intersections``: a dict that keeps the group mask of each set of subject masks, for the
    next tests over the same masks.

    Returns
    -------
    stale : list of Path
        The set's earlier files (relative to OUTPUT_DIR), for ``staging.commit``.
    """
    output_dir = settings.output_dir
    items = test.inputs
    group_model, design, own = _own(test, settings)
    common = {"task": test.task, "space": test.space}
    form = surface.read_form(items[0].effect) if surface.is_surface_file(items[0].effect) else None
    effects = [i.effect for i in items]
    subjects = list(dict.fromkeys(test.subjects))
    sessions = {"Sessions": [i.session for i in items]} if any(i.session for i in items) else {}
    node_keys = _model_keys(settings, "dataset")
    if node_keys and test.node is not None:
        node_keys["node"] = test.node.name
    elif node_keys and any(i.info.model_file not in _made_by(node_keys["model_file"]) for i in items):
        node_keys = {}  # the default model's copy, which did not make these subject maps (a model file's did)
    contrasts = list(combine.contrasts_of(test, group_model))
    masks = tuple(i.mask for i in items)
    mask = intersections.get(masks) if intersections is not None else None
    if mask is None:
        mask = combine.intersect_masks(masks)
        if intersections is not None:
            intersections[masks] = mask
    key = _mask_key(test, settings)
    every = (own_masks or {}).get(key)  # this task's tests have masks of their own: each is named by its contrast
    mask_paths = _write_group_mask(mask, masks, staging, output_dir, form, key,
                                   contrast=test.contrast if every is not None else None)
    if every is not None and shared_written is not None and key not in shared_written:
        shared_written.add(key)  # the task's mask, of every subject tested: the one the report shows
        _write_group_mask(combine.intersect_masks(every), every, staging, output_dir, form, key)
    raw = outputs.dataset_names(settings.bids_dir)  # participants.tsv's and sessions.tsv's dataset
    values = None  # the effect maps inside the mask, read once for the contrasts of a group design
    if any(matrix is not None for _, matrix in contrasts):
        values = combine.masked_matrix(effects, mask)
    for contrast, matrix in contrasts:
        maps, group = _group_maps(test, contrast, matrix, mask, group_model, values)
        sources = [*effects, *([i.variance for i in items] if group_model == "fixed" else [])]
        sidecar = sidecars.StatmapSidecar(
            tuple(dict.fromkeys(outputs.source(p, output_dir)  # a GIFTI pair: named once, by either file
                                for f in [*sources, *mask_paths] for p in surface.files_of(f)))
            + tuple(outputs.source(p, output_dir, raw) for p in test.tables),
            sidecars.ContrastInfo(contrast.name, contrast.weights, contrast.test), maps.dof,
            items[0].info.model,
            group={**group, "NumberOfSubjects": len(subjects), "Subjects": subjects, **sessions},
            **node_keys,
        )
        outputs.write_statmaps("group_statmap", maps, staging, sidecar.to_json(), form, desc=own, **common)
        if settings.inference.any and contrast.test == "t":
            if settings.inference.n_perm > 2 ** len(effects) and _one_sample(test.design):
                logger.warning("task-%s contrast-%s: %d subjects have only %d distinct sign flips, fewer than the "
                               "--n-perm %d asked for, so the permutation p values cannot go below 1/%d.", test.task,
                               contrast.label, len(effects), 2 ** len(effects), settings.inference.n_perm,
                               2 ** len(effects))
            elif 0 < settings.inference.n_perm < _fewest_permutations(settings.inference.permutation_alpha) and \
                    _one_sample(test.design):
                logger.warning("task-%s contrast-%s: %d permutations cannot give a corrected p value below 1/%d, so "
                               "no voxel can reach p < %g (the alpha); ask for at least %d (1,000 or more for stable "
                               "p values).", test.task, contrast.label, settings.inference.n_perm,
                               settings.inference.n_perm + 1, settings.inference.permutation_alpha,
                               _fewest_permutations(settings.inference.permutation_alpha))
            found = inference.inference_maps(
                maps.maps, mask, settings.inference,
                effects=effects if group_model == "random" and _one_sample(test.design) else None,
            )
            outputs.write_inference_maps("group_statmap", contrast.label, found, staging, sidecar.to_json(),
                                         group_model=group_model, design=design, desc_parts=test.desc_parts,
                                         **common)
        elif settings.inference.any:
            logger.warning("task-%s contrast-%s is an F test: the corrected inference asked for (%s) applies to t "
                           "contrasts, so its F, z and p maps alone were written; test its rows as t contrasts to "
                           "correct them.", test.task, contrast.label, inference.option_text(settings.inference))
    labels = {contrast.label for contrast, _ in contrasts} | {test.contrast}
    return [
        relative for relative in outputs.existing_set(output_dir, "group", task=test.task, space=test.space,
                                                      contrast=tuple(labels))
        if naming.group_model_of(naming.parse(relative)) == own
        or (naming.parse(relative).get("suffix") == "mask" and naming.parse(relative).get("desc") == key[2])
    ]  # a test's own mask of an earlier job (its contrast's subjects differed then) included


def _write_group_mask(mask, subject_masks, staging, output_dir, form, key, contrast=None) -> list:
    """Write a group mask (``contrast``: a test's own) and its sidecar; its paths."""
    task, space, desc = key
    return outputs.write_map_and_sidecars(
        mask, staging, "group_mask",
        outputs.mask_sidecar("Intersection of the subjects' fixed-effects masks", space,
                             [outputs.source(p, output_dir) for m in dict.fromkeys(subject_masks)
                              for p in surface.files_of(m)]),
        form, desc=desc, task=task, space=space, **({"contrast": contrast} if contrast else {}),
    )


def _fewest_permutations(alpha) -> int:
    """The fewest permutations whose smallest p value, 1/(n + 1), is below ``alpha`` (20 for 0.05)."""
    return math.floor(1 / alpha + 1e-9)


def _group_test_name(test, settings) -> str:
    """What a group test computes, for the log: fixed effects, a one-sample t-test or a GLM."""
    if (test.group_model or settings.group_model) == "fixed":
        return "fixed effects"
    return "one-sample t-test" if _one_sample(test.design) else "general linear model"


def _one_sample(design) -> bool:
    """Whether a group design is the one-sample test (none given, or the intercept alone)."""
    return design is None or list(design.columns) == ["intercept"]


def _group_maps(test, contrast, matrix, mask, group_model, values=None):
    """The maps of one contrast of a group test, and the keys of its sidecar that say how
    (``values``: the effect maps inside the mask, read beforehand, for a group design)."""
    items = test.inputs
    effects = [i.effect for i in items]
    if matrix is None:
        if group_model == "fixed":
            maps = combine.group_fixed_effects(effects, [i.variance for i in items], [i.info.dof for i in items],
                                               mask, contrast, test.precision_weighted)
            return maps, {"GroupModel": "fixed effects", "FixedEffects": {"PrecisionWeighted": test.precision_weighted}}
        return combine.one_sample_test(effects, mask, contrast), {"GroupModel": "one-sample t-test"}
    design = test.design
    maps = combine.group_glm(effects, mask, design, matrix.matrix, contrast, values)
    plain = _one_sample(design)
    group = {"GroupModel": "one-sample t-test" if plain else "general linear model"}
    if not plain:
        mixed = len({i.contrast for i in items}) > 1
        rows = [i.subject if i.session is None and not mixed else naming.run_name(
            (("sub", i.subject), *((("ses", i.session),) if i.session else ()),
             *((("contrast", i.contrast),) if mixed else ()))) for i in items]
        group["DesignMatrix"] = {"Columns": list(design.columns), "Rows": rows,
                                 "Values": design.to_numpy().round(10).tolist()}
        group["ContrastMatrix"] = matrix.matrix.round(10).tolist()
    return maps, group


def _said_boilerplate(written) -> None:
    """The closing line of a ``--boilerplate-only`` job: where the text is (the first of the
    files written, :func:`_write_boilerplate`: ``logs/CITATION.md``)."""
    logger.log(progress.SUMMARY, "Methods text written (no map): %s", written[0])


def _write_boilerplate(settings, checked, group_plan, composed=None, methods=None, undescribed=()):
    """Write the methods boilerplate (``logs/CITATION.*``) from the level's plan (``composed``:
    its text, made beforehand; ``methods``: the group level's facts; ``undescribed``: the
    subjects of OUTPUT_DIR this job did not make; see :func:`.boilerplate.write`). Returns the
    files written."""
    from . import boilerplate

    return boilerplate.write(settings, plan=checked, group_plan=group_plan, notes=checked.notes if checked else (),
                             composed=composed, methods=methods, undescribed=undescribed)


def _other_subjects(output_dir, checked) -> tuple[str, ...]:
    """The subjects (``sub-<s>``) whose folders OUTPUT_DIR holds but this job did not make
    (other jobs': one per subject on a cluster), which its methods text does not describe.
    One listing of OUTPUT_DIR."""
    mine = {subject.subject for subject in checked.subjects}
    try:
        with os.scandir(output_dir) as entries:
            folders = [entry.name for entry in entries if entry.name.startswith("sub-")
                       and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return ()
    return tuple(sorted(name for name in folders if name[4:] not in mine))


def _write_reports(settings, checked, notes, fork=False):
    """Write each subject's HTML report and its figures (the log's last line says where);
    ``fork``: see :func:`.report.write_participant_reports`."""
    from . import report

    report.write_participant_reports(settings, checked, notes, fork=fork)


@contextmanager
def _pages_pruned_on_failure(settings, checked):
    """The list of subject sets committed so far, filled by the caller: when the job fails or is
    stopped after some (a later run unreadable, a SIGTERM), their pages lose the sections of
    the maps they replaced (:func:`_prune_subject_pages`), which showed the earlier maps and
    figures the new sets removed, as a job without reports leaves them."""
    committed = []
    try:
        yield committed
    except BaseException:
        if committed:
            try:
                _prune_subject_pages(settings, replace(checked, subjects=tuple(committed)))
            except Exception:  # noqa: BLE001 - the job's own error is the one to say
                logger.debug("The pages of the subjects written could not be pruned", exc_info=True)
        raise


def _prune_subject_pages(settings, checked) -> None:
    """For a job without reports: each subject's page loses the sections of the tasks and spaces
    this job replaced (they showed the earlier maps, and figures this job removed), keeping those
    of other jobs' (:func:`.report.subject.keep_earlier_sections`); a page left empty is removed."""
    from .report.subject import keep_earlier_sections, section_anchor

    anchors = defaultdict(set)
    for subject in checked.subjects:
        anchors[subject.subject].add(section_anchor(subject.task, subject.space))
    for subject, own in anchors.items():
        page = settings.output_dir / naming.build("subject_report", subject=subject)
        if not page.is_file():
            continue
        if keep_earlier_sections(settings, subject, own) is None:
            logger.info("Removed %s, the report of the outputs this job replaced (written without a report).",
                        page.name)
            _unlink_from_group_page(settings.output_dir, subject, page.name)
        else:
            logger.info("Removed from %s the sections of the outputs this job replaced (written without a report).",
                        page.name)


def _unlink_from_group_page(output_dir, subject, page_name) -> None:
    """The group's page names a subject whose page a job without reports removed: its link
    (which led nowhere until the group level ran again) becomes the subject's name alone."""
    import html

    page = output_dir / naming.build("group_report")
    link = f'<a href="{html.escape(page_name)}">sub-{html.escape(subject)}</a>'
    with outputs.folder_lock(output_dir):  # as the group level reads and writes its page
        try:
            text = page.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
        if link in text:
            outputs.write_text(text.replace(link, f"sub-{html.escape(subject)}"), page)


def _remove_outdated_group_page(settings, tests) -> None:
    """Remove the group's HTML report and its figures, which an earlier job wrote of the maps
    this job replaced without a report (``--no-reports``; ``tests``: this job's tests the page
    would show); its sections of other tasks and spaces (maps this job left as they were) stay,
    with their figures, and so does a page of another group model's or design's maps."""
    from .report import page_maps, shown_maps
    from .report.group import earlier_group_sets
    from .report.subject import section_anchor

    output_dir, page = settings.output_dir, naming.build("group_report")
    try:
        shown = shown_maps((output_dir / page).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        shown = None
    if shown is not None and shown != page_maps(settings):
        logger.debug("%s shows the desc-%s maps, which this job left as they were: kept", page, shown)
        return
    with outputs.folder_lock(output_dir):  # the page read and written again in one turn (see write_group_page)
        _prune_group_page_locked(settings, tests, earlier_group_sets(
            settings, {section_anchor(test.task, test.space) for test in tests}))


def _prune_group_page_locked(settings, tests, earlier) -> None:
    """:func:`_remove_outdated_group_page`'s removal, given the page's sections of other tasks and spaces."""
    from .report.group import write_group_page
    from .report.pages import linked_files

    output_dir, page = settings.output_dir, naming.build("group_report")
    linked = {path for kept in earlier for path in linked_files(kept.section)}
    # this job's tasks and spaces only: a group job of another task beside this one may have drawn
    # figures its page does not link yet
    own = {(test.task, space) for test in tests for space in (test.space, None)}
    figures = [path.relative_to(output_dir) for path in sorted((output_dir / "group" / "figures").glob("*"))
               if path.is_file() and path.relative_to(output_dir) not in linked
               and (naming.parse(path.relative_to(output_dir)).get("task"),
                    naming.parse(path.relative_to(output_dir)).get("space")) in own]
    if earlier:  # the page of the other tasks and spaces
        write_group_page(settings, plan.GroupPlan(tests=(), untested=(), notes=()), earlier=earlier)
        outputs.remove_files(output_dir, figures)
        if figures:
            logger.info("Removed from %s the sections of the maps this job replaced, and their %d figure(s) (written "
                        "without a report).", page, len(figures))
        return
    removed = [path for path in (page, *figures) if (output_dir / path).is_file()]
    outputs.remove_files(output_dir, removed)
    if removed:
        logger.info("Removed %s and its %d figure(s), the report of the maps this job replaced (written without a "
                    "report).", page, len(figures))


def _reported_tests(settings, group_plan) -> tuple:
    """The tests the group's HTML report shows: those whose maps and inputs are named as SPEC
    §3 names them (one node per level), of this job's group model and design."""
    return tuple(t for t in group_plan.tests if t.named_plainly and t.design_desc == settings.group_design
                 and (t.group_model or settings.group_model) == settings.group_model)
