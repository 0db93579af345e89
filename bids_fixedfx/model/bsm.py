"""Read a BIDS Stats Model (BIDSModelVersion 1.0.0) into frozen records.

Keys are matched without regard to case or underscores (``ConditionList``,
``condition_list``), levels and tests likewise; the legacy spellings that pybids accepts are
taken (a contrast's ``Type`` for ``Test``, ``Transformations`` as a list of instructions,
``DummyContrasts.Conditions``). The pre-1.0 ``Steps`` format and transformers other than
``pybids-transforms-v1`` are refused. Every problem is one :class:`ModelError` sentence that
names the node, contrast or key at fault. When ``bsmschema`` is installed, the model is also
validated against the specification's schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFileError, UsageError, check_regular_file
from ..jsonfile import RoundedNumber, exact_float
from ._parse import canonical, listify

#: The analysis levels, lowest first.
LEVELS = ("run", "session", "subject", "dataset")
#: ``1`` in ``Model.X`` and ``ConditionList``: the intercept.
INTERCEPT = 1


def is_intercept(value) -> bool:
    """Whether a ``Model.X`` or ``ConditionList`` entry is the intercept: the number 1, as in
    BIDS Stats Models and pybids (the text ``"1"`` names a variable, such as a trial type "1")."""
    return not isinstance(value, (bool, str)) and value == INTERCEPT
TESTS = ("t", "F", "pass")
#: The tests whose maps a node passes on to the next (an F contrast is terminal).
PASSED_ON = ("t", "pass")
MODEL_TYPES = ("glm", "meta")
TRANSFORMER = "pybids-transforms-v1"
#: The pybids-transforms-v1 instructions this package implements.
TRANSFORMATION_NAMES = (
    "And", "Assign", "Convolve", "Copy", "Delete", "Demean", "DropNA", "Factor", "Filter",
    "Lag", "Not", "Or", "Orthogonalize", "Product", "Rename", "Replace", "Scale", "Select",
    "Split", "Sum", "Threshold", "ToDense",
)


class ModelError(UsageError):
    """A model file, or a model applied to data, is wrong (exit 64)."""


@dataclass(frozen=True)
class Contrast:
    """A contrast of a node: weights over the variables of its ``ConditionList``.

    Attributes
    ----------
    name : str
    condition_list : tuple of (str or int)
        Variables; ``1`` is the intercept.
    weights : tuple of float, or tuple of tuple of float
        One weight per condition (t), or rows of them (F).
    test : {'t', 'F', 'pass'}
    """

    name: str
    condition_list: tuple
    weights: tuple
    test: str = "t"

    @property
    def matrix_rows(self) -> tuple:
        """The weights as rows (one row for a t contrast)."""
        return self.weights if self.weights and isinstance(self.weights[0], tuple) else (self.weights,)


@dataclass(frozen=True)
class DummyContrasts:
    """One contrast per variable, weight 1, named after it (``conditions`` None: all of X)."""

    conditions: tuple | None = None
    test: str = "t"


@dataclass(frozen=True)
class HRF:
    """``Model.HRF``: the variables to convolve and nilearn's name of the HRF model."""

    variables: tuple
    model: str = "glover"
    fir_delays: tuple | None = None


@dataclass(frozen=True)
class Transformation:
    """One pybids-transforms-v1 instruction.

    Attributes
    ----------
    name : str
        Canonical name (``Factor``, ``DropNA``, ...).
    input : tuple of str
    output : tuple of str or None
    arguments : dict
        The other keys, snake_case (``fir_delays``, ``replace_na``), values as in the JSON.
    """

    name: str
    input: tuple = ()
    output: tuple | None = None
    arguments: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    """A node of a model: an estimator at one level.

    Attributes
    ----------
    name, level : str
        ``level`` is one of :data:`LEVELS`.
    group_by : tuple of str
    model_type : {'glm', 'meta'}
    x : tuple of (str or int)
        Variables, with wildcards; ``1`` is the intercept.
    hrf : HRF or None
    high_pass : float or None
        ``Model.Options.HighPassFilterCutoffHz``: a cosine drift basis with that cut-off.
    transformations : tuple of Transformation
    contrasts : tuple of Contrast
    dummy_contrasts : DummyContrasts or None
    options, software : dict
        The rest of ``Model.Options`` (``LowPassFilterCutoffHz``, ``Mask``, ...) and
        ``Model.Software``, kept as given.
    formula, description : str or None
    """

    name: str
    level: str
    group_by: tuple
    x: tuple
    model_type: str = "glm"
    hrf: HRF | None = None
    high_pass: float | None = None
    transformations: tuple = ()
    contrasts: tuple = ()
    dummy_contrasts: DummyContrasts | None = None
    options: dict = field(default_factory=dict)
    software: dict = field(default_factory=dict)
    formula: str | None = None
    description: str | None = None

    def contrast(self, name: str) -> Contrast:
        """The explicit contrast of that name."""
        for contrast in self.contrasts:
            if contrast.name == name:
                return contrast
        raise ModelError(f"Node {self.name!r} has no contrast {name!r}.")


@dataclass(frozen=True)
class Edge:
    """An edge: the contrasts of ``source`` (those matching ``filter``) go to ``destination``."""

    source: str
    destination: str
    filter: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A BIDS Stats Model.

    Attributes
    ----------
    name : str
    nodes : tuple of Node
    edges : tuple of Edge
        As given, or each node to the next in list order.
    input : dict
        ``Input`` selectors (``{"task": ("stroop",)}``), values as tuples.
    description : str or None
    version : str
        ``BIDSModelVersion``.
    notes : tuple of str
        Legacy spellings that were read, for the user to know (not part of equality).
    """

    name: str
    nodes: tuple
    edges: tuple
    input: dict = field(default_factory=dict)
    description: str | None = None
    version: str = "1.0.0"
    notes: tuple = field(default=(), compare=False)

    def node(self, name: str) -> Node:
        """The node of that name."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ModelError(f"Model {self.name!r} has no node {name!r}.")

    def parents(self, name: str) -> tuple:
        """The edges that lead into the node."""
        return tuple(e for e in self.edges if e.destination == name)

    def children(self, name: str) -> tuple:
        """The edges that leave the node."""
        return tuple(e for e in self.edges if e.source == name)

    @property
    def root(self) -> Node:
        """The node without incoming edges (the first such node)."""
        return next(n for n in self.nodes if not self.parents(n.name))

    def nodes_at(self, *levels: str) -> tuple:
        """The nodes at the given levels, in model order."""
        return tuple(n for n in self.nodes if n.level in levels)

    def to_dict(self) -> dict:
        """The model as a BIDS Stats Model document (canonical spelling)."""
        from ._serialize import model_to_dict

        return model_to_dict(self)

    def to_json(self) -> str:
        """The model as BIDS Stats Model JSON text; :func:`parse_model` of it gives an equal model."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "the model", default_name: str | None = None) -> Model:
        """Parse JSON text (see :func:`parse_model`)."""
        try:
            document = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys,
                                  parse_float=exact_float)
        except _RepeatedKey as error:
            raise ModelError(f"{source} has the key {error.key!r} twice in one object; JSON keeps only the last, "
                             "so remove or merge the other.") from None
        except RoundedNumber as error:
            raise ModelError(error.said(source)) from None
        except json.JSONDecodeError as error:
            raise ModelError(f"{source} is not valid JSON ({error.msg}, line {error.lineno}).") from None
        except RecursionError:
            raise ModelError(f"{source} is nested too deeply to be a model.") from None
        except ValueError as error:  # NaN or Infinity; an integer of thousands of digits
            reason = error if "JSON number" in str(error) else "it holds a number of thousands of digits"
            raise ModelError(f"{source} is not valid JSON ({reason}).") from None
        return parse_model(document, source, default_name)


class _RepeatedKey(Exception):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs) -> dict:
    """``json.loads``' hook for objects: a key given twice (two ``Contrasts`` of a node, a
    merge slip) is refused, where Python would keep the last without a word."""
    document = {}
    for key, value in pairs:
        if key in document:
            raise _RepeatedKey(key)
        document[key] = value
    return document


def _no_constant(name):
    """``json.loads``' hook for ``NaN``, ``Infinity`` and ``-Infinity``, which Python reads but
    JSON does not define: refused, as no setting of a model is one of them."""
    raise ValueError(f"{name} is not a JSON number")


#: The most nodes a model may have (a web form's model of thousands wrote tens of thousands of files).
MAX_NODES = 100
#: The longest file label of a node's Name (its maps' ``desc-``): with the longest contrast label a
#: run allows, the subject and group maps' names stay within the file systems' 255 bytes.
MAX_NODE_LABEL = 64


def _check_label(name, what, source) -> None:
    """The model's copy and its nodes' maps are named after their Names (``desc-<label>``): a
    Name without a letter or digit of A-Z, 0-9 is refused."""
    from ..naming import label_of

    try:
        label_of(name)
    except ValueError:
        raise ModelError(f"{source}: {what} has no letters or digits (A-Z, 0-9) to name files after; "
                         "give it some.") from None


def _check_node_name_length(name, source) -> None:
    """A node's maps are named after it (``desc-<label>``, beside the contrast's label): a Name
    whose label is longer than :data:`MAX_NODE_LABEL` is refused before anything is fitted (a
    job fitted every run, then stopped at its first subject map: "File name too long")."""
    from ..naming import label_of

    if len(label_of(name).encode()) > MAX_NODE_LABEL:
        raise ModelError(f"{source}: node {name[:40] + '...' if len(name) > 40 else name!r} has a Name too long to "
                         f"name its maps after (at most {MAX_NODE_LABEL} letters and digits); give it a shorter Name.")


def _check_name_length(name, source) -> None:
    """The model's copy in OUTPUT_DIR is named after it (``models/model-<label>_smdl.json``):
    a name too long for a file name is refused before anything is written."""
    from ..naming import NAME_MAX, build, label_of, temporary_length

    if len(name) > NAME_MAX or temporary_length(build("model", model=label_of(name)).name) > NAME_MAX:
        raise ModelError(f"{source}: Name is too long for the file name of the model's copy "
                         f"(at most {NAME_MAX} bytes); give it a shorter Name.")


def load_model(path) -> Model:
    """Read a BIDS Stats Model file.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    model : Model

    Raises
    ------
    ModelError
        The file cannot be read, is not JSON, or is not a model this app can run.
    """
    path = Path(path)
    check_regular_file(path, f"Model file {path}", ModelError)  # a pipe or /dev/zero: read for ever
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:  # a missing input file (66), as a missing mask or events file
        raise InputFileError(f"Model file {path} does not exist.") from None
    except OSError as error:
        raise ModelError(f"Model file {path} cannot be read ({error.strerror or error}).") from None
    except UnicodeDecodeError:
        raise ModelError(f"Model file {path} is not UTF-8 text, as JSON files are.") from None
    return Model.from_json(text, source=f"Model file {path.name}", default_name=path.name.split("_smdl")[0].split(".")[0])


def parse_model(document, source: str = "the model", default_name: str | None = None, schema: bool = True) -> Model:
    """Check a BIDS Stats Model document and turn it into a :class:`Model`.

    Parameters
    ----------
    document : dict
        The parsed JSON.
    source : str
        How errors name the document (``"Model file model-x_smdl.json"``).
    default_name : str, optional
        The model's name when the document has none (the file's name), with a note.
    schema : bool
        Also check the document against the specification's schema (``bsmschema``); the
        app's own default model is not (the tests check it), which saves loading the schema.

    Returns
    -------
    model : Model
    """
    notes: list[str] = []
    if not isinstance(document, dict):
        raise ModelError(f"{source} is not a JSON object.")
    lowered = {re.sub(r"[_\s-]", "", str(k)).lower() for k in document}
    if "level" in lowered and "nodes" not in lowered:
        raise ModelError(f"{source} is a single node (it has a Level); a model file holds its nodes in 'Nodes', "
                         "with a Name and BIDSModelVersion.")
    if "steps" in lowered:
        raise ModelError(
            f"{source} uses the pre-1.0 'Steps' format of BIDS Stats Models; rewrite it with "
            "'Nodes' and 'Edges' (BIDSModelVersion 1.0.0)."
        )
    doc = canonical(document, ("Name", "BIDSModelVersion", "Description", "Input", "Nodes", "Edges"), source)
    version = str(doc.get("BIDSModelVersion", "1.0.0"))
    if "BIDSModelVersion" not in doc:
        notes.append(f"{source} has no BIDSModelVersion; read as 1.0.0")
    elif not version.startswith("1."):
        raise ModelError(f"{source} has BIDSModelVersion {version}; this app reads version 1.0.0.")
    if "Name" not in doc and default_name:
        doc["Name"] = default_name
        notes.append(f"{source} has no Name; named {default_name!r} after its file")
    if "Name" in doc and not isinstance(doc["Name"], str):
        raise ModelError(f"{source}: Name must be text, not {json.dumps(doc['Name'])[:40]}.")
    if not doc.get("Name"):
        raise ModelError(f"{source} has no Name.")
    _check_label(doc["Name"], "its Name", source)
    _check_name_length(doc["Name"], source)
    nodes_doc = doc.get("Nodes")
    if "Nodes" in doc and not isinstance(nodes_doc, list):
        raise ModelError(f"{source}: Nodes must be a list of nodes, not {type(nodes_doc).__name__}.")
    if not nodes_doc:
        raise ModelError(f"{source} has no Nodes.")
    from ._nodes import parse_edge, parse_node

    if len(nodes_doc) > MAX_NODES:
        raise ModelError(f"{source} has {len(nodes_doc)} nodes; a model may have at most {MAX_NODES} (each node "
                         "writes its own maps): split the model.")
    nodes = tuple(parse_node(n, i, source, notes) for i, n in enumerate(nodes_doc))
    names = [n.name for n in nodes]
    for name in names:
        if names.count(name) > 1:
            raise ModelError(f"{source} has two nodes named {name!r}; node names must be unique.")
    for name in names:
        _check_label(name, f"node {name!r}", source)
        _check_node_name_length(name, source)
    if doc.get("Edges"):
        edges = tuple(parse_edge(e, source, names) for e in listify(doc["Edges"]))
    else:
        edges = tuple(Edge(a.name, b.name) for a, b in zip(nodes, nodes[1:]))
    selectors = doc.get("Input") or {}
    if not isinstance(selectors, dict):
        raise ModelError(f"{source}: Input must be an object of entities, such as {{\"task\": [\"stroop\"]}}.")
    model = Model(
        name=doc["Name"], nodes=nodes, edges=edges,
        input={str(k): tuple(listify(v)) for k, v in selectors.items()},
        description=doc.get("Description"), version=version, notes=tuple(notes),
    )
    from ._checks import check_model

    notes += check_model(model, source, schema=schema)
    return Model(**{**model.__dict__, "notes": tuple(notes)})
