"""The command line: parse arguments into a :class:`Settings`, run, return an exit code.

``bids-fixedfx BIDS_DIR OUTPUT_DIR {participant,group} [options]`` (SPEC.md §1).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import shlex
import signal
import sys
from collections import Counter
from pathlib import Path

from . import __version__, allocator
from .errors import EX_FAILURE, EX_NO_INPUT, EX_USAGE, FixedFxError, UsageError
from .jsonfile import EVERY_KEY, read_object
from .locations import give_a_home
from .arguments import (
    DRIFT_OPTIONS,
    GROUP_ONLY,
    HRF_MODELS,
    MODEL_DEFINED,
    PARTICIPANT_ONLY,
    contrast,
    cutoff_hz,
    default_nprocs,
    derivatives_path,
    drift_order,
    hrf_name,
    nonblank,
    nonnegative_int,
    nonblank_path,
    permutations,
    positive_int,
    probability,
    smoothing_width,
    space_label,
    strip_prefix,
    z_threshold,
)
from .inference import METHODS, OPTIONS, REQUIRES, REQUIRES_ONE, InferenceSettings
from .progress import SUMMARY, WarningCount
from .settings import CONFOUND_STRATEGIES, MAX_CONTRASTS, MOTION_CONFOUNDS, ModelSettings, Settings

logger = logging.getLogger("bids_fixedfx")
class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors exit with SPEC's usage code, 64, in one line that
    points to ``--help`` (argparse printed its whole usage, twenty lines, before the error; a
    value the line quotes is cut when it is long: :func:`bounded`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _Given)
        self.register("action", "store", _Given)
        self.given = set()

    def parse_known_args(self, args=None, namespace=None):
        self.given = set()  # the options given so far in this parse (see _Given)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(EX_USAGE, f"{self.prog}: error: {bounded(message).rstrip('.')}; see {self.prog} --help.\n")


class _Given(argparse.Action):
    """argparse's ``store`` for options given more than once: the values of a list option
    (``nargs="+"``) add up, each once (``--participant-label 01 --participant-label 02`` is both
    subjects, as a job script that builds the line option by option means it); a second,
    different value of a one-value option is an error (argparse kept the last one without a
    word: ``--smoothing-fwhm 5 --smoothing-fwhm 8`` smoothed at 8)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(parser, "given", set())
        if self.nargs == "+":
            earlier = list(getattr(namespace, self.dest, None) or []) if self.dest in given else []
            values = earlier + [value for value in values if value not in earlier]
        elif self.dest in given and getattr(namespace, self.dest, None) != values:
            parser.error(f"argument {'/'.join(self.option_strings)}: given twice, with "
                         f"{getattr(namespace, self.dest)!s} and {values!s}; give it once")
        given.add(self.dest)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    """Build the whole argument parser of the app.

    Returns
    -------
    parser : argparse.ArgumentParser
        Positional arguments of the BIDS App contract and option groups.
    """
    parser = _Parser(
        prog="bids-fixedfx",
        description="Task-fMRI statistics for BIDS datasets: run-level GLMs, "
        "fixed effects across each subject's runs, and group-level tests.",
    )
    parser.add_argument("bids_dir", type=nonblank_path, help="the root of the BIDS dataset")
    parser.add_argument("output_dir", type=nonblank_path, help="where the derivatives are written")
    parser.add_argument(
        "analysis_level",
        choices=["participant", "group"],
        help="participant: fit runs and combine them per subject; "
        "group: test the subjects' maps across subjects",
    )
    parser.add_argument("--version", action="version", version=f"bids-fixedfx {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail in the log (repeatable)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="log only warnings, errors and the closing summary"
    )

    select = parser.add_argument_group("Selecting data")
    select.add_argument(
        "--participant-label", "--participant_label", nargs="+", default=[],
        type=strip_prefix("sub-"), metavar="LABEL",
        help="subjects to process, with or without 'sub-' (default: all)",
    )
    select.add_argument(
        "--session-label", nargs="+", default=[], type=strip_prefix("ses-"), metavar="LABEL",
        help="sessions to include, with or without 'ses-' (default: all)",
    )
    select.add_argument(
        "-t", "--task", nargs="+", default=[], type=strip_prefix("task-"),
        help="tasks to model (default: every task that has events)",
    )
    select.add_argument(
        "--space", nargs="+", type=space_label, metavar="SPACE",
        help="the derivatives' space(s) to model, each separately: volume spaces, surface spaces "
        "(fsaverage5, fsnative ...: GIFTI pairs) and fsLR (CIFTI); 'none' for files without a space "
        "entity (default: MNI152NLin2009cAsym if present, else the only space present)",
    )
    select.add_argument(
        "-d", "--derivatives", nargs="+", type=derivatives_path, default=[], metavar="PATH",
        help="preprocessed derivatives in fMRIPrep's layout (default: every dataset "
        "under BIDS_DIR/derivatives); NAME=PATH, as fMRIPrep and FitLins take it, is read as PATH",
    )
    select.add_argument(
        "--bids-filter-file", type=nonblank_path, metavar="FILE",
        help='JSON of pybids queries in fMRIPrep\'s format, e.g. {"bold": {"acquisition": "x"}}',
    )
    select.add_argument(
        "--bids-database-dir", type=nonblank_path, metavar="DIR",
        help="save the pybids index there and reuse it in later jobs (default: index afresh)",
    )
    select.add_argument(
        "--skip-bids-validation", "--skip_bids_validation", action="store_true",
        help="do not run the BIDS validator on the input",
    )

    model = parser.add_argument_group("Model")
    model.add_argument(
        "--contrast", action="append", type=contrast, default=[], metavar="NAME=SPEC",
        help="a t contrast (repeatable): an expression over design columns "
        "(DSt+DSp-SSt-SSp) or comma-separated weights (-1,-1,1,1), zero-padded "
        "(default: one contrast per condition)",
    )
    model.add_argument(
        "-m", "--model", type=nonblank_path, metavar="FILE", dest="model_file",
        help="a BIDS Stats Model (BIDSModelVersion 1.0.0); it replaces the model options "
        "(default: the model the options define, written to OUTPUT_DIR/models/)",
    )
    model.add_argument(
        "--design-dir", type=nonblank_path, metavar="DIR",
        help="precomputed per-run design matrices (.tsv with a header, or .npz with "
        "the matrix under key X), named with their run's entities",
    )
    model.add_argument(
        "--mask", type=nonblank_path, metavar="FILE",
        help="one mask for every run (default: each run's desc-brain_mask)",
    )
    model.add_argument(
        "--smoothing-fwhm", type=smoothing_width, default=None, metavar="MM",
        help="isotropic Gaussian smoothing in mm; 0 disables (default: 5 on volume spaces, none on "
        "surface and CIFTI spaces; on fsaverage5 a given value smooths along nilearn's mesh)",
    )
    model.add_argument(
        "--hrf-model", default="glover", type=hrf_name, choices=HRF_MODELS, metavar="HRF",
        help=f"nilearn HRF model: {', '.join(repr(m) for m in HRF_MODELS)}, also spelled without "
        "spaces (spm+derivative) (default: glover)",
    )
    model.add_argument(
        "--drift-model", choices=["cosine", "polynomial", "none"], default="cosine",
        help="drift regressors (default: cosine)",
    )
    model.add_argument(
        "--high-pass", type=cutoff_hz, default=0.01, metavar="HZ",
        help="cut-off of the cosine drift model in Hz (default: 0.01)",
    )
    model.add_argument(
        "--drift-order", type=drift_order, default=1, metavar="N",
        help="order of the polynomial drift model (default: 1)",
    )
    model.add_argument(
        "--noise-model", choices=["ar1", "ols"], default="ar1", help="(default: ar1)"
    )
    model.add_argument(
        "--confounds", nargs="+", default=None, metavar="X", type=nonblank("confound column or strategy", "motion"),
        help="confound columns (wildcards allowed: 'trans_*'), a nilearn load_confounds "
        "strategy (motion, wm_csf, global_signal, compcor, ...), or 'none' "
        "(default: the six motion parameters)",
    )
    model.add_argument(
        "--dummy-scans", type=nonnegative_int, default=None, metavar="N",
        help="leave the first N volumes of each run out of the fit where its confounds have no "
        "non_steady_state_outlier columns (where they do, the volumes those flag are left out, always)",
    )
    model.add_argument(
        "--precision-weighted", action="store_true",
        help="inverse-variance weighting in fixed effects (default: off, as in nilearn)",
    )
    model.add_argument(
        "--group-model", choices=["random", "fixed"], default="random",
        help="group level: a one-sample t-test across subjects (random) or fixed "
        "effects over the subjects' maps (default: random)",
    )

    model.add_argument(
        "--group-covariates", nargs="+", default=[], type=nonblank("column", "age"), metavar="COLUMN",
        help="group level: a design from participants.tsv columns instead of the one-sample test: "
        "one group column (its levels compared) and numeric covariates (demeaned, their slopes tested)",
    )
    infer = parser.add_argument_group(
        "Corrected inference (maps written beside the unthresholded ones; subject and group level)")
    infer.add_argument(
        "--threshold", choices=METHODS, metavar="METHOD",
        help="write z maps thresholded by nilearn's threshold_stats_img: fpr (uncorrected), fdr or "
        "bonferroni, two-sided (default: none)",
    )
    infer.add_argument(
        "--alpha", type=probability, metavar="A",
        help="error rate of --threshold (default: nilearn's, 0.001 for fpr, 0.05 for fdr and "
        "bonferroni) and of --cluster-inference (default 0.05)",
    )
    infer.add_argument(
        "--cluster-extent", type=nonnegative_int, default=0, metavar="K",
        help="with --threshold, remove clusters smaller than K voxels (default: 0)",
    )
    infer.add_argument(
        "--cluster-inference", action="store_true",
        help="write nilearn's cluster_level_inference map (proportion of true discoveries)",
    )
    infer.add_argument(
        "--cluster-threshold", type=z_threshold, default=None, metavar="Z",
        help="cluster-forming z of --cluster-inference and of permutation cluster statistics (default: 3)",
    )
    infer.add_argument(
        "--n-perm", type=permutations, default=0, metavar="N",
        help="group level: a permutation test (nilearn non_parametric_inference) with N sign flips, "
        "written as -log10 p maps (default: 0, none)",
    )
    infer.add_argument("--tfce", action="store_true",
                       help="group level, with --n-perm: add threshold-free cluster enhancement")

    report = parser.add_argument_group("Reports")
    report.add_argument(
        "--report-threshold", type=z_threshold, default=3.0, metavar="Z",
        help="|z| threshold of the report's maps (default: 3)",
    )
    report.add_argument("--no-reports", action="store_true", help="do not write HTML reports")
    report.add_argument(
        "--boilerplate-only", action="store_true",
        help="write only the methods boilerplate (logs/CITATION.*)",
    )

    run = parser.add_argument_group("Running")
    run.add_argument("-w", "--work-dir", type=nonblank_path, metavar="DIR", help="scratch space")
    run.add_argument(
        "--nprocs", "--n_cpus", type=positive_int, default=default_nprocs(), metavar="N",
        help="CPU cores to use: each run is smoothed and fitted on this many threads "
        "(default: all available cores)",
    )
    return parser


def given_options(argv, parser=None) -> set[str]:
    """The destinations of the options given on the command line (abbreviations included).

    Parameters
    ----------
    argv : list of str
    parser : argparse.ArgumentParser, optional
        A parser of :func:`build_parser` to use (its defaults are suppressed); a new one by default.

    Returns
    -------
    dests : set of str
    """
    parser = parser or build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def check_level_options(argv, level) -> None:
    """Refuse an option that has no effect at the chosen analysis level.

    Raises
    ------
    UsageError
        Naming the option and the level it belongs to.
    """
    parser = build_parser()
    flags = option_flags(parser)
    other, wrong = ("group", GROUP_ONLY) if level == "participant" else ("participant", PARTICIPANT_ONLY)
    given = given_options(argv, parser)
    for dest in sorted(given & set(wrong)):
        raise UsageError(
            f"{flags[dest]} has no effect at the {level} level; it belongs to the {other} level."
        )
    if "model_file" in given:
        for dest in sorted(given & set(MODEL_DEFINED)):
            raise UsageError(f"{flags[dest]} is given with --model, whose file states the model; use one or the other.")


def check_drift_options(argv, drift_model) -> None:
    """Refuse a drift option that the chosen drift model does not use: ``--high-pass`` is the
    cut-off of the cosine drift, ``--drift-order`` the order of the polynomial one.

    Raises
    ------
    UsageError
        Naming the option and ``--drift-model``.
    """
    given = given_options(argv)
    for dest in sorted(given & set(DRIFT_OPTIONS)):
        if DRIFT_OPTIONS[dest] != drift_model:
            chosen = f"--drift-model {drift_model}" + ("" if "drift_model" in given else " (the default)")
            raise UsageError(f"--{dest.replace('_', '-')} has no effect with {chosen}; it belongs to the "
                             f"{DRIFT_OPTIONS[dest]} drift (--drift-model {DRIFT_OPTIONS[dest]}).")


def check_report_options(argv) -> None:
    """Refuse ``--report-threshold`` when no report is written (``--no-reports``,
    ``--boilerplate-only``): the threshold a figure would have been drawn at is lost silently.

    Raises
    ------
    UsageError
        Naming both options.
    """
    given = given_options(argv)
    for without in ("no_reports", "boilerplate_only"):
        if "report_threshold" in given and without in given:
            raise UsageError(f"--report-threshold has no effect with --{without.replace('_', '-')}, which writes no "
                             "report; drop one or the other.")


def option_flags(parser) -> dict:
    """How the command line spells each argument: its longest flag (``--work-dir``), or the
    name of a positional one (``BIDS_DIR``)."""
    return {a.dest: max(a.option_strings, key=len) if a.option_strings else a.dest.upper() for a in parser._actions}


def check_path_encoding(args, parser) -> None:
    """Refuse a path whose name holds bytes that are not UTF-8 (a folder named on a Latin-1
    system): the validator stopped on it (a valid dataset said to fail validation) and pybids
    with a UnicodeEncodeError (exit 1).

    Parameters
    ----------
    args : argparse.Namespace
    parser : argparse.ArgumentParser
        The parser that made ``args``.

    Raises
    ------
    UsageError
        Naming the option and the first byte at fault.
    """
    flags = option_flags(parser)
    for dest, value in vars(args).items():
        for path in value if isinstance(value, list) else [value]:
            if not isinstance(path, os.PathLike):
                continue
            try:
                str(path).encode("utf-8")
            except UnicodeEncodeError as error:
                byte = os.fsencode(str(path)[error.start])
                raise UsageError(f"{flags[dest]} {str(path)!r} holds the byte {byte!r}, which is "
                                 "not UTF-8 (a name from a Latin-1 system); rename that folder or file in UTF-8."
                                 ) from None
            _check_name_lengths(path, flags[dest])


def _check_name_lengths(path, flag) -> None:
    """Refuse a path one of whose names is longer than the file system allows (255 bytes on
    most): it failed later as a link loop, a missing file, or a name "the outputs need"."""
    longest = max((part for part in Path(path).parts if part != "/"), key=lambda part: len(os.fsencode(part)),
                  default="")
    size = len(os.fsencode(longest))
    if size <= 255:
        return
    folder = Path(path)
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    try:
        allowed = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        allowed = 255
    if size > allowed:
        raise UsageError(f"{flag} {bounded(str(path))!r} holds a name of {size} bytes ({longest[:40]}...), longer than "
                         f"the file system allows ({allowed}); give a shorter path.")


#: The ``--bids-filter-file`` entries the app reads.
FILTER_KINDS = ("bold", "mask", "confounds", "events")
#: The entries of fMRIPrep's filter files (its ``DEFAULT_BIDS_QUERIES``) that name files this app
#: does not read: a job script passes one filter file to both.
OTHER_FILTER_KINDS = ("t1w", "t2w", "flair", "fmap", "sbref", "roi", "dwi", "asl", "pet")


def _read_filters(path):
    """The queries of ``--bids-filter-file``: file kind -> {pybids entity: value or values}."""
    if path is None:
        return {}
    filters = read_object(path, "--bids-filter-file", UsageError, once=EVERY_KEY)
    if not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError(
            f'--bids-filter-file {path} must map file kinds to queries, like {{"bold": {{"run": 1}}}}.'
        )
    from .naming import entity_patterns

    from .discover.query import NAME_ONLY_ENTITIES

    known = {entity.name for entity in entity_patterns(statmaps=False)} | set(NAME_ONLY_ENTITIES)
    plain = (str, int, float, bool, type(None))
    for kind, query in filters.items():
        for entity, value in query.items():
            if entity not in known:
                raise UsageError(f"--bids-filter-file {path}: the query of {kind!r} names {entity[:40]!r}, which is "
                                 f"not a BIDS entity (pybids' names: {', '.join(sorted(known))}).")
            if not isinstance(value, plain) and not (isinstance(value, list) and all(isinstance(v, plain) for v in value)):
                raise UsageError(f"--bids-filter-file {path}: the query of {kind!r} gives {entity} a value that "
                                 "is neither a label, a number, null nor a list of them.")
            if value == []:  # pybids selects every file for it
                raise UsageError(f"--bids-filter-file {path}: the query of {kind!r} gives {entity} an empty list; "
                                 f"list the values to select, or leave {entity} out to select every one.")
            odd = [v for v in (value if isinstance(value, list) else [value])
                   if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())
                   or (isinstance(v, (int, float)) and not 0 <= v < 2 ** 63)]  # pybids' index: SQLite's integers
            if odd:  # pybids reads true and 1.9 as run 1
                raise UsageError(f"--bids-filter-file {path}: the query of {kind!r} gives {entity} the value "
                                 f"{json.dumps(odd[0])}, which no BIDS label or index is; give a label or a whole number.")
    from .naming import RUN_ENTITIES

    for kind in FILTER_KINDS[1:]:  # the files that go with a run, found by its own entities
        named = [entity for entity, _ in RUN_ENTITIES if entity in filters.get(kind, {})]
        if named:
            raise UsageError(
                f"--bids-filter-file {path}: the query of {kind!r} names {named[0]!r}, which tells runs apart: "
                f"a run's {kind} file is its own run's (this would give the runs another run's); select runs "
                "in the query of 'bold'."
            )
    if "hemi" in filters.get("bold", {}):  # it was overridden: both files of a GIFTI pair are one series
        raise UsageError(f"--bids-filter-file {path}: the query of 'bold' names hemi, but a GIFTI series is its "
                         "pair of hemispheres, fitted together; leave hemi out.")
    extensions = filters.get("bold", {}).get("extension")
    series = (".nii", ".nii.gz", ".func.gii", ".dtseries.nii")
    odd = [e for e in (extensions if isinstance(extensions, list) else [extensions])
           if extensions is not None and str(e if str(e).startswith(".") else f".{e}") not in series]
    if odd:  # a sidecar (.json) read as the BOLD series failed later, blaming the dataset
        raise UsageError(f"--bids-filter-file {path}: the query of 'bold' gives the extension {json.dumps(odd[0])}, "
                         f"which is no BOLD series' ({', '.join(series)}).")
    return filters


def parse_settings(argv=None) -> Settings:
    """Parse the command line into the app's settings.

    Parameters
    ----------
    argv : list of str, optional
        The arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    settings : Settings
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_level_options(argv, args.analysis_level)
    check_drift_options(argv, args.drift_model)
    check_report_options(argv)
    check_path_encoding(args, parser)
    confounds = MOTION_CONFOUNDS if args.confounds is None else tuple(args.confounds)
    if confounds in (("none",), ("",)):
        confounds = ()
    _check_confounds(confounds)
    model = ModelSettings(
        smoothing_fwhm=(5.0 if args.smoothing_fwhm is None else args.smoothing_fwhm) or None,
        smoothing_given=args.smoothing_fwhm is not None,
        hrf_model=args.hrf_model,
        drift_model=None if args.drift_model == "none" else args.drift_model,
        high_pass=args.high_pass,
        drift_order=args.drift_order,
        noise_model=args.noise_model,
        confounds=confounds,
        confounds_given=args.confounds is not None,
        dummy_scans=args.dummy_scans,
        precision_weighted=args.precision_weighted,
    )
    if args.group_covariates and args.group_model == "fixed":
        raise UsageError("--group-covariates designs a test across subjects; it does not go with --group-model fixed.")
    if args.n_perm and args.group_model == "fixed":
        raise UsageError("--n-perm tests across subjects by sign flips; it does not go with --group-model fixed.")
    inference = InferenceSettings(
        method=args.threshold, alpha=args.alpha, cluster_extent=args.cluster_extent,
        cluster_inference=args.cluster_inference,
        cluster_threshold=3.0 if args.cluster_threshold is None else args.cluster_threshold,
        n_perm=args.n_perm, tfce=args.tfce,
    )
    for field, needed, why in REQUIRES:
        if getattr(inference, field) and not getattr(inference, needed):
            raise UsageError(f"{OPTIONS[field]} needs {OPTIONS[needed]} ({why}).")
    for field, needed, why in REQUIRES_ONE:  # given alone, it would change nothing
        if getattr(args, field) is not None and not any(getattr(inference, other) for other in needed):
            here = [other for other in needed if not (args.analysis_level == "participant" and other in GROUP_ONLY)]
            raise UsageError(f"{OPTIONS[field]} needs {' or '.join(OPTIONS[other] for other in here)} ({why}).")
    if len(args.contrast) > MAX_CONTRASTS:
        raise UsageError(f"--contrast is given {len(args.contrast)} times; at most {MAX_CONTRASTS} contrasts are "
                         "computed in one run of the app (each writes five maps a run and a subject).")
    names = Counter(c.name for c in args.contrast)
    duplicated = sorted(n for n, count in names.items() if count > 1)
    if duplicated:
        raise UsageError(f"--contrast {duplicated[0]} is given more than once.")
    if args.quiet and args.verbose:
        raise UsageError("-q/--quiet and -v/--verbose ask for less and more of the log at once; give one or the other.")
    return Settings(
        bids_dir=args.bids_dir.absolute(),
        output_dir=args.output_dir.absolute(),
        analysis_level=args.analysis_level,
        participant_label=tuple(dict.fromkeys(args.participant_label)),
        session_label=tuple(dict.fromkeys(args.session_label)),
        task=tuple(dict.fromkeys(args.task)),
        space=None if not args.space else args.space[0] if len(args.space) == 1 else tuple(args.space),
        derivatives=_once(p.absolute() for p in args.derivatives),
        bids_filters=_read_filters(args.bids_filter_file),
        skip_bids_validation=args.skip_bids_validation,
        bids_database_dir=args.bids_database_dir.absolute() if args.bids_database_dir else None,
        contrasts=tuple(args.contrast),
        model_file=args.model_file.absolute() if args.model_file else None,
        design_dir=args.design_dir.absolute() if args.design_dir else None,
        mask=args.mask.absolute() if args.mask else None,
        model=model,
        group_model=args.group_model,
        group_covariates=tuple(dict.fromkeys(args.group_covariates)),
        inference=inference,
        work_dir=args.work_dir.absolute() if args.work_dir else None,
        nprocs=args.nprocs,
        verbose=-1 if args.quiet else args.verbose,
        reports=not args.no_reports,
        report_threshold=args.report_threshold,
        boilerplate_only=args.boilerplate_only,
        command=shlex.join(["bids-fixedfx", *argv]),
    )


class _Formatter(logging.Formatter):
    """``HH:MM:SS LEVEL: message``; the closing summary reads as INFO. A message is one line:
    control characters that input text carries into it (a newline in a ``trial_type``, a NUL)
    are shown escaped, so that no input can forge a log line, and a message that input text
    makes longer than :data:`MAX_MESSAGE` characters (a value of megabytes quoted) is cut in
    its middle (:func:`bounded`)."""

    def format(self, record):
        if record.levelno == SUMMARY:
            record.levelname = "INFO"
        return super().format(record)

    def formatMessage(self, record):
        record.message = bounded(_CONTROL.sub(lambda match: repr(match.group())[1:-1], record.message))
        return super().formatMessage(record)


#: The longest message written whole; a real one is a few hundred characters.
MAX_MESSAGE = 4000


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text``, or its start and end around a note of how much was left out when it is longer
    than ``limit`` characters."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 5
    return f"{text[:head]} [... {len(text) - head - tail} characters left out ...] {text[-tail:]}"


#: Control characters but the tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _once(paths) -> tuple:
    """The paths, each folder once however it is spelled (pybids refuses a dataset added twice)."""
    kept = {}
    for path in paths:
        kept.setdefault(path.resolve(), path)
    return tuple(kept.values())


def _setup_logging(verbose):
    """The app's own stderr handler on the ``bids_fixedfx`` logger (other handlers are kept)."""
    level = SUMMARY if verbose < 0 else logging.INFO if verbose == 0 else logging.DEBUG
    for handler in [h for h in logger.handlers if getattr(h, "bids_fixedfx", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.bids_fixedfx = True
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    counter = WarningCount()  # afresh each run: the closing summary counts this job's warnings
    counter.bids_fixedfx = True
    logger.addHandler(counter)
    logger.setLevel(level)
    logger.propagate = False
    nibabel = logging.getLogger("nibabel.global")  # its own stderr handler, added when nibabel loads
    if not any(isinstance(f, _ToDebug) for f in nibabel.filters):
        nibabel.addFilter(_ToDebug())


class _ToDebug(logging.Filter):
    """A filter of nibabel's header checks' logger: what it says of a header it mends
    (``sizeof_hdr should be 348``) goes to the app's log at debug level (``-v``), not to stderr
    in its own words ahead of the app's sentence about the file."""

    def filter(self, record):
        logger.debug("nibabel: %s", record.getMessage())
        return False


def main(argv=None, fork: bool = False) -> int:
    """Run the app from the command line and return its exit code.

    With ``fork`` (the ``bids-fixedfx`` command's choice, :func:`run`), the participant level
    may select the runs in a forked child while nilearn loads (:mod:`.forked`); a caller's
    own process (a test, a notebook) is otherwise left alone.
    """
    try:
        settings = parse_settings(argv)
    except FixedFxError as error:
        print(f"bids-fixedfx: error: {bounded(str(error))}", file=sys.stderr)
        return error.exit_code
    except SystemExit as stop:  # argparse: --help, --version, or a usage error
        return stop.code if isinstance(stop.code, int) else EX_USAGE
    except PermissionError as error:  # an option's file under a folder closed to this user
        text, code = _permission_denied(error, None) if error.filename else (
            f"Processing failed: {error} (a resource this job's user may not use).", EX_FAILURE)
        print(f"bids-fixedfx: error: {bounded(text)}", file=sys.stderr)
        return code
    _setup_logging(settings.verbose)
    allocator.tune(settings.nprocs)
    from .surface import hide_carrier_warning

    hide_carrier_warning()
    home = give_a_home(settings.work_dir)
    if home is not None:
        logger.debug("This user has no home folder: HOME is %s for this job", home)
    for kind in settings.bids_filters:
        if kind in OTHER_FILTER_KINDS:  # a filter file made for fMRIPrep
            logger.info("--bids-filter-file entry %r is of files this app does not read (it reads %s), so it is "
                        "ignored.", kind, ", ".join(FILTER_KINDS))
        elif kind not in FILTER_KINDS:
            logger.warning("--bids-filter-file entry %r is not a kind this app reads (%s), so it is ignored; "
                           "check its spelling.", kind[:40], ", ".join(FILTER_KINDS))

    try:
        from .workflow import run_level  # heavy imports (nilearn, pybids) only once arguments are good

        run_level(settings, fork=fork)
    except FixedFxError as error:
        logger.error("%s", _naming_the_model(error, settings.model_file))
        if error.__cause__ is not None:
            logger.debug("Cause:", exc_info=error.__cause__)
        return error.exit_code
    except KeyboardInterrupt as stop:  # Ctrl-C, or a SIGTERM (docker stop, SLURM's time limit): see run()
        signal_number = stop.signal_number if isinstance(stop, Terminated) else signal.SIGINT
        if settings.output_dir.is_dir():
            logger.error("Interrupted (%s); files already in %s are complete, the files being written were removed.",
                         signal.Signals(signal_number).name, settings.output_dir)
        else:
            logger.error("Interrupted (%s) before anything was written.", signal.Signals(signal_number).name)
        return 128 + signal_number
    except Exception as error:  # noqa: BLE001 - the app's last line of defence
        from .outputs import STAGING_ROOT

        if isinstance(error, PermissionError) and error.filename:
            text, code = _permission_denied(error, settings)
            logger.error("%s", text)
            logger.debug("Traceback:", exc_info=True)
            return code
        if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:  # labels joined: a contrast, a column
            name = os.path.basename(str(error.filename or ""))
            logger.error("A file name the outputs need, %s (%d bytes), is longer than the file system allows; shorten "
                         "the names it is made of (contrasts, conditions, columns, model nodes).", name, len(name.encode()))
            return EX_USAGE
        if isinstance(error, OSError) and error.errno == errno.ENOENT and STAGING_ROOT in str(error.filename or ""):
            # another job replaced this one's staged files: a second job of the same outputs
            logger.error("Another job is writing the same outputs in %s at the same time (it removed the files "
                         "this job staged in %s); run one job per subject, task and space at a time, then rerun this "
                         "one.", settings.output_dir, STAGING_ROOT)
        elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {error.filename}" if error.filename else f" writing in {settings.output_dir}"
            logger.error("Processing failed: the disk is full (or the quota reached)%s; free space there, or give "
                         "another OUTPUT_DIR (or --work-dir), then rerun: the files already in place are complete, "
                         "those being written were removed.", where)
        elif isinstance(error, MemoryError):  # numpy's says how much; a Python allocation says nothing
            logger.error("Processing failed: not enough memory%s; give the job more memory, or fewer runs or subjects "
                         "at a time (--participant-label).", f" ({error})" if str(error) else "")
        else:
            logger.error("Processing failed: %s (run with -v for the traceback).", error)
        logger.debug("Traceback:", exc_info=True)
        return EX_FAILURE
    return 0


#: nilearn's ``load_confounds_strategy`` presets that are not strategies themselves, and the
#: strategies each combines (``--confounds`` takes those, with load_confounds' defaults, which
#: are ``simple``'s but not all of ``scrubbing``'s: its ``wm_csf`` is ``full``, for one).
STRATEGY_PRESETS = {"simple": "motion high_pass wm_csf", "scrubbing": "motion high_pass wm_csf scrub"}


def _check_confounds(names) -> None:
    """``--confounds`` is column names (wildcards), nilearn strategies, or ``none``, not a mix
    (a strategy among columns was sought as a column, and said to match none)."""
    if len(names) > 1 and ("none" in names or "" in names):
        raise UsageError(f"--confounds {' '.join(names)}: none stands alone (no confounds); give it alone, or "
                         "give the confounds.")
    presets = [n for n in names if n in STRATEGY_PRESETS]
    if presets:
        raise UsageError(
            f"--confounds {presets[0]} is a preset of nilearn's load_confounds_strategy, which --confounds does not "
            f"take; give strategies, such as those it combines (--confounds {STRATEGY_PRESETS[presets[0]]}, with "
            f"load_confounds' defaults), or column names (strategies: {', '.join(CONFOUND_STRATEGIES)})."
        )
    strategies = [n for n in names if n in CONFOUND_STRATEGIES]
    only = [n for n in strategies if n != "global_signal"]  # global_signal is also an fMRIPrep column
    if only and len(strategies) < len(names):
        columns = [n for n in names if n not in CONFOUND_STRATEGIES]
        raise UsageError(f"--confounds mixes nilearn load_confounds strategies ({', '.join(strategies)}) and column "
                         f"names ({', '.join(columns)}); give strategies or columns, not both.")


def _permission_denied(error, settings) -> tuple[str, int]:
    """The sentence and exit code of a file or folder this job's user may not read or write:
    one of OUTPUT_DIR, ``--work-dir`` or ``--bids-database-dir`` (64, as a folder that cannot
    be written to), else an input (66)."""
    path = Path(error.filename)
    roots = [] if settings is None else [settings.output_dir, settings.work_dir, settings.bids_database_dir]
    written = any(root is not None and (path == Path(root) or Path(root) in path.parents) for root in roots)
    user = f" (uid {os.getuid()})" if hasattr(os, "getuid") else ""
    text = (f"Permission denied: this job's user{user} cannot {'access' if written else 'read'} {path}; give that "
            f"user access (a container runs as the user its -u or --user option gives), or give another "
            f"{'folder' if written else 'path'}.")
    return text, EX_USAGE if written else EX_NO_INPUT


def _naming_the_model(error, model_file) -> str:
    """An error's message; a model file's error (``Node 'run': ...``) names the file given with
    ``-m`` when it does not already."""
    from .model import ModelError

    text = str(error)
    if model_file is None or not isinstance(error, ModelError) or model_file.name in text:
        return text
    return f"Model file {model_file.name}: {text}"


class Terminated(KeyboardInterrupt):
    """A termination signal, raised as Ctrl-C is (:func:`run`): the files being written are
    removed on the way out, as they are on Ctrl-C."""

    def __init__(self, signal_number):
        super().__init__(signal_number)
        self.signal_number = signal_number


#: The signals that stop the command as Ctrl-C does (:func:`run`).
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


#: The signal being handled (its number), once one came.
_STOPPED_BY = []


def _terminate(signal_number, frame):
    for stopping in STOPPING:  # a second signal would interrupt the removal of the files being written
        signal.signal(stopping, signal.SIG_IGN)
    _STOPPED_BY[:] = [signal_number]
    raise Terminated(signal_number)


def _terminate_again(signal_number, frame):
    raise Terminated(_STOPPED_BY[0])


def _unraisable(unraisable) -> None:
    """``sys.unraisablehook``: a :class:`Terminated` raised while Python ran a finalizer or a
    garbage collector's callback (pybids' database objects have them), where it ignores every
    exception, is raised again 10 ms later from a SIGALRM, outside it: the job went on to its
    end, exit 0, the signals that stop it ignored. Anything else is reported as Python does."""
    if isinstance(unraisable.exc_value, Terminated) and _STOPPED_BY:
        signal.signal(signal.SIGALRM, _terminate_again)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        return
    sys.__unraisablehook__(unraisable)


def stop_on_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP stop the command as Ctrl-C does (see :func:`run`)."""
    for stopping in STOPPING:
        signal.signal(stopping, _terminate)
    sys.unraisablehook = _unraisable


def run() -> None:
    """The ``bids-fixedfx`` command: :func:`main` (with ``fork``), then a quick exit.

    A SIGTERM (``docker stop``, ``scancel``, a job's time limit) or a SIGHUP (a closed
    terminal) ends it as Ctrl-C does: the staged files are removed (further signals meanwhile
    ignored), and the exit code is 128 + the signal's number (143, 129; 130 for Ctrl-C).

    Once the work is done, the exit handlers run (logging's last flush, temporary
    files' removal) and the process ends without tearing down, one by one, the
    thousands of modules that nilearn and pybids load (half a second on every run).
    """
    import atexit
    import os

    stop_on_signals()
    code = main(fork=True)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # not CPython, or under a profiler or debugger that reports at exit
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # no stream, or a closed pipe: nothing more can be said
            pass
    os._exit(code)
