"""Where the app may write (SPEC §4): never inside an input dataset."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from bids_fixedfx import locations
from bids_fixedfx.errors import UsageError


def _dataset(root, name="raw", generated_by=None):
    root.mkdir(parents=True, exist_ok=True)
    description = {"Name": name, "BIDSVersion": "1.10.0"}
    if generated_by:
        description.update(DatasetType="derivative", GeneratedBy=[{"Name": generated_by}])
    (root / "dataset_description.json").write_text(json.dumps(description))
    return root


def test_locations_outside_the_inputs_are_allowed(tmp_path):
    bids = _dataset(tmp_path / "bids")
    _dataset(bids / "derivatives" / "fmriprep", generated_by="fMRIPrep")
    locations.check_locations(bids, tmp_path / "out", tmp_path / "work")
    locations.check_locations(bids, bids / "derivatives" / "fixedfx", bids / "derivatives" / "scratch")


@pytest.mark.parametrize("where", ["", "sub-01", "logs/index"])
@pytest.mark.parametrize("option, key", [("--bids-database-dir", "database_dir"), ("--work-dir", "work_dir")])
def test_a_database_or_work_dir_inside_output_dir_is_refused(tmp_path, where, option, key):
    """The saved index went among the outputs, and -w OUT/work left an empty work/ there: the
    BIDS validator failed them."""
    bids = _dataset(tmp_path / "bids")
    with pytest.raises(UsageError, match=f"{option} {tmp_path / 'out' / where}".rstrip("/")
                                         + f" is inside OUTPUT_DIR {tmp_path / 'out'}"):
        locations.check_locations(bids, tmp_path / "out", **{key: tmp_path / "out" / where})
    locations.check_locations(bids, tmp_path / "out", **{key: tmp_path / "outdb"})


def test_a_database_dir_that_exists_may_be_read_only(tmp_path, monkeypatch):
    """A lab's saved index, read-only to the users that run the jobs, was refused (64): it is
    read (and one that cannot be saved there is made afresh, with a warning)."""
    import tempfile

    bids = _dataset(tmp_path / "bids")
    shared = tmp_path / "shared"
    shared.mkdir()

    made = tempfile.mkdtemp

    def refused(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == shared:  # the lab's folder: read-only to this user
            raise PermissionError(13, "Permission denied")
        return made(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    locations.check_locations(bids, tmp_path / "out", database_dir=shared)
    with pytest.raises(UsageError, match="--bids-database-dir .* cannot be written"):
        locations.check_locations(bids, tmp_path / "out", database_dir=shared / "new")


@pytest.mark.parametrize("umask, mode, folder", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_files_and_folders_are_made_as_the_umask_says(tmp_path, umask, mode, folder):
    """Outputs were 0644 whatever the umask: a lab's shared folder (umask 002) gave its group
    no write access to them."""
    import os

    from bids_fixedfx import outputs

    before = os.umask(umask)
    try:
        assert locations.creation_mode() == mode and locations.creation_mode(0o777) == folder
        written = outputs.write_text("x", tmp_path / "a.txt")
    finally:
        os.umask(before)
    assert written.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize(
    "where",
    ["", "results", "sub-01", "derivatives/fmriprep", "derivatives/fmriprep/stats", "derivatives"],
)
def test_locations_inside_an_input_are_refused(tmp_path, where):
    bids = _dataset(tmp_path / "bids")
    _dataset(bids / "derivatives" / "fmriprep", generated_by="fMRIPrep")
    for option, kwargs in (("OUTPUT_DIR", {"output_dir": bids / where}),
                           ("--work-dir", {"output_dir": tmp_path / "out", "work_dir": bids / where}),
                           ("--bids-database-dir", {"output_dir": tmp_path / "out", "database_dir": bids / where})):
        with pytest.raises(UsageError, match=option):
            locations.check_locations(bids, **kwargs)


def test_locations_in_a_folder_an_input_links_to_are_refused(tmp_path):
    """BIDS_DIR/sub-01 a link to store/sub-01 (datalad-like layouts): OUTPUT_DIR or --work-dir
    in store/sub-01 wrote a whole output, or a work folder, into the raw subject folder."""
    bids = _dataset(tmp_path / "bids")
    fmriprep = _dataset(bids / "derivatives" / "fmriprep", generated_by="fMRIPrep")
    for linked in (bids / "sub-01", fmriprep / "sub-01"):
        target = tmp_path / "store" / linked.parent.name / "sub-01"
        target.mkdir(parents=True)
        linked.symlink_to(target, target_is_directory=True)
        for option, kwargs in (("OUTPUT_DIR", {"output_dir": target / "stats"}),
                               ("--work-dir", {"output_dir": tmp_path / "out", "work_dir": target / "work"}),
                               ("--bids-database-dir", {"output_dir": tmp_path / "out", "database_dir": target})):
            with pytest.raises(UsageError, match=f"{option} .* is inside {target}, which the input's symbolic link "
                                                 f"{linked} points to"):
                locations.check_locations(bids, **kwargs)
        locations.check_locations(bids, tmp_path / "store" / "stats", tmp_path / "store" / "work")
    (bids / "code").symlink_to(tmp_path, target_is_directory=True)  # a linked folder the app does not read
    locations.check_locations(bids, tmp_path / "results", tmp_path / "work")
    derivatives = tmp_path / "elsewhere" / "derivatives"  # a linked derivatives/ stays the place for outputs
    derivatives.parent.mkdir()
    (bids / "derivatives").rename(derivatives)
    (bids / "derivatives").symlink_to(derivatives, target_is_directory=True)
    locations.check_locations(bids, bids / "derivatives" / "fixedfx", bids / "derivatives" / "scratch")


def test_an_output_dir_holding_another_dataset_is_refused(tmp_path):
    """Another BIDS dataset (or a folder of sub-* entries without our description) as OUTPUT_DIR
    would have its files replaced as a subject's earlier outputs: refused; a new or empty folder,
    one of other files, and an earlier output of the app are accepted."""
    bids = _dataset(tmp_path / "bids")
    other = _dataset(tmp_path / "other")
    (other / "sub-01").mkdir()
    bare = tmp_path / "bare"
    (bare / "sub-01" / "func").mkdir(parents=True)
    for output, said in ((other, "holds another dataset"), (bare, r"holds sub-\* entries")):
        with pytest.raises(UsageError, match=said) as raised:
            locations.check_locations(bids, output)
        assert str(output) in str(raised.value)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x")
    for output in (tmp_path / "new", tmp_path / "new" / "deeper", notes,
                   _dataset(tmp_path / "earlier", generated_by="bids-fixedfx")):
        locations.check_locations(bids, output)


@pytest.mark.parametrize("owned", ["README.md", "logs/CITATION.md", "group.html", "models"])
def test_an_output_dir_holding_a_file_the_app_would_replace_is_refused(tmp_path, owned):
    """A user's README.md or logs/CITATION.md in a folder given as OUTPUT_DIR was replaced by
    the app's, silently; a folder of the SLURM example's logs alone is still accepted."""
    bids = _dataset(tmp_path / "bids")
    results = tmp_path / "results"
    (results / "logs" / "slurm").mkdir(parents=True)
    locations.check_locations(bids, results)
    (results / owned).parent.mkdir(parents=True, exist_ok=True)
    (results / owned).write_text("My own notes")
    with pytest.raises(UsageError, match=f"holds {owned} but no dataset_description.json of bids-fixedfx"):
        locations.check_locations(bids, results)
    assert (results / owned).read_text() == "My own notes"


def test_an_earlier_output_of_the_app_is_not_an_input(tmp_path):
    bids = _dataset(tmp_path / "bids")
    own = _dataset(bids / "derivatives" / "fixedfx", generated_by="bids-fixedfx")
    locations.check_locations(bids, own)
    assert own not in locations.input_datasets(bids, ())


def test_a_given_derivatives_dataset_is_an_input(tmp_path):
    bids = _dataset(tmp_path / "bids")
    prep = _dataset(tmp_path / "prep", generated_by="fMRIPrep")
    with pytest.raises(UsageError, match="OUTPUT_DIR"):
        locations.check_locations(bids, prep / "out", derivatives=[prep])


def test_derivatives_folder_that_is_itself_a_dataset(tmp_path):
    """derivatives/ itself fMRIPrep's dataset: a new folder beside its sub-* is the exception of
    SPEC §4 (under BIDS_DIR/derivatives/, not itself an input; the index reads no other top-level
    folder of a dataset); its subject folders stay inputs."""
    bids = _dataset(tmp_path / "bids")
    _dataset(bids / "derivatives", generated_by="fMRIPrep")
    (bids / "derivatives" / "sub-01").mkdir()
    locations.check_locations(bids, bids / "derivatives" / "fixedfx")
    with pytest.raises(UsageError, match="is inside the input dataset"):
        locations.check_locations(bids, bids / "derivatives" / "sub-01" / "out")
    with pytest.raises(UsageError, match="derivatives is inside BIDS_DIR, which is never written to"):
        locations.check_locations(bids, bids / "derivatives")


def test_subject_folders_under_derivatives_read_as_derivatives_are_an_input(tmp_path):
    """nilearn's layout (``derivatives/sub-*``, no description), read as derivatives: its subject
    folders are inputs; a new folder beside them was refused, though SPEC §4 allows one under
    BIDS_DIR/derivatives/ (the probe of other generators' layouts, nilearn's own, found it)."""
    bids = _dataset(tmp_path / "bids")
    (bids / "derivatives" / "sub-01" / "func").mkdir(parents=True)
    locations.check_locations(bids, bids / "derivatives" / "fixedfx", derivatives=(bids / "derivatives",))
    for option in ("work_dir", "database_dir"):  # written in every job: a saved index would look out of date
        with pytest.raises(UsageError, match="is inside the input dataset"):
            locations.check_locations(bids, tmp_path / "out", derivatives=(bids / "derivatives",),
                                      **{option: bids / "derivatives" / "scratch"})
    with pytest.raises(UsageError) as error:
        locations.check_locations(bids, bids / "derivatives" / "sub-01" / "x", derivatives=(bids / "derivatives",))
    assert f"inside the input dataset {bids / 'derivatives'}" in str(error.value)
    locations.check_locations(bids, tmp_path / "out", derivatives=(bids / "derivatives",))


def test_scratch_is_the_temporary_folder_of_the_app_and_its_programs_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "system"))
    before = tempfile.gettempdir()
    work = tmp_path / "work" / "deeper"
    with locations.scratch(work):
        assert work.is_dir() and os.environ["TMPDIR"] == str(work)
        with tempfile.TemporaryDirectory() as folder:
            assert work in Path(folder).parents
    assert tempfile.gettempdir() == before and os.environ["TMPDIR"] == str(tmp_path / "system")
    with pytest.raises(RuntimeError), locations.scratch(work):
        raise RuntimeError
    assert tempfile.gettempdir() == before and os.environ["TMPDIR"] == str(tmp_path / "system")
    with locations.scratch(None):
        assert tempfile.gettempdir() == before


def test_a_scratch_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="--work-dir .*file/work cannot be made"), locations.scratch(
            tmp_path / "file" / "work"):
        pass


@pytest.mark.parametrize("linked", ["sub-01", "sub-01/func", "group", "models"])
def test_a_linked_folder_in_an_earlier_output_is_refused(tmp_path, linked):
    """A rerun wrote through OUTPUT_DIR/sub-01 -> the input's sub-01 and removed its preprocessed
    series there as stale maps."""
    bids = _dataset(tmp_path / "bids")
    out = _dataset(tmp_path / "out", generated_by="bids-fixedfx")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (out / linked).parent.mkdir(parents=True, exist_ok=True)
    (out / linked).symlink_to(target, target_is_directory=True)
    with pytest.raises(UsageError, match=f"{out / linked} in OUTPUT_DIR is a symbolic link"):
        locations.check_locations(bids, out)
    if linked == "sub-01/func":  # only the jobs that write in sub-01 walk its folder
        locations.check_locations(bids, out, subjects=("02",))
    if linked.startswith("sub-"):
        with pytest.raises(UsageError):
            locations.check_locations(bids, out, subjects=("01",))


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_an_output_dir_that_is_a_broken_link_is_named(tmp_path, kind):
    """Both were exit 1 ('File exists', 'Symlink loop')."""
    bids = _dataset(tmp_path / "bids")
    link = tmp_path / kind
    link.symlink_to(tmp_path / "nowhere" if kind == "dangling" else link)
    with pytest.raises(UsageError, match=f"OUTPUT_DIR {link} is a symbolic link to nothing"):
        locations.check_locations(bids, link)


@pytest.mark.parametrize("option", ["OUTPUT_DIR", "--work-dir", "--bids-database-dir"])
@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_folder_under_a_broken_link_is_named(tmp_path, kind, option):
    """OUTPUT_DIR under a link to nothing was exit 1 ('[Errno 17] File exists'), once the runs were fitted."""
    bids = _dataset(tmp_path / "bids")
    link = tmp_path / kind
    link.symlink_to(tmp_path / "nowhere" if kind == "dangling" else link)
    folder = link / "out" / "deeper"
    given = {"OUTPUT_DIR": {"output_dir": folder},
             "--work-dir": {"output_dir": tmp_path / "out", "work_dir": folder},
             "--bids-database-dir": {"output_dir": tmp_path / "out", "database_dir": folder}}[option]
    with pytest.raises(UsageError, match=f"{option} {folder} is under {link}, a symbolic link to nothing"):
        locations.check_locations(bids, **given)


def test_a_folder_its_permissions_allow_but_its_file_system_refuses_is_named(tmp_path, monkeypatch):
    """Root-squashed NFS, ACLs and /sys let ``os.access`` pass and then refuse the folder: the
    check makes one, rather than failing when the first output is written (exit 1)."""
    bids = _dataset(tmp_path / "bids")

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    locations.check_locations(bids, tmp_path / "out" / "deep")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bids"]
    monkeypatch.setattr(locations.tempfile, "mkdtemp", refuse)
    with pytest.raises(UsageError, match=rf"OUTPUT_DIR {tmp_path / 'out' / 'deep'} cannot be written: a folder "
                       rf"cannot be made in {tmp_path} \(Operation not permitted\)"):
        locations.check_locations(bids, tmp_path / "out" / "deep")


def test_a_user_without_a_home_folder_is_given_the_scratch_space(tmp_path, monkeypatch):
    """An account-less user of a container with HOME unset: pybids' import stopped the job (exit 1,
    "Could not determine home directory") and the validator found no cache folder (exit 16)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert locations.give_a_home(tmp_path / "work") is None  # a home folder: left as it is
    assert os.environ["HOME"] == str(tmp_path)

    def homeless():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("HOME")
    monkeypatch.setattr(Path, "home", staticmethod(homeless))
    assert locations.give_a_home(tmp_path / "work") == tmp_path / "work"
    assert os.environ["HOME"] == str(tmp_path / "work")
    monkeypatch.delenv("HOME")
    assert locations.give_a_home() == Path(tempfile.gettempdir())
